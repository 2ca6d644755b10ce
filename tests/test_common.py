from sklearn.utils.estimator_checks import (
    check_param_validation,
    parametrize_with_checks,
)

from skbutterfly import ButterflyApproximator

ESTIMATORS = [ButterflyApproximator(), ButterflyApproximator(depth=2, rank=2, n_jobs=2)]


def _expected_failed_checks(estimator):
    return {
        "check_complex_data": (
            "complex operators such as the DFT are supported on purpose"
        )
    }


@parametrize_with_checks(
    ESTIMATORS, expected_failed_checks=_expected_failed_checks, xfail_strict=True
)
def test_sklearn_compatible(estimator, check):
    check(estimator)


def test_param_validation():
    check_param_validation("ButterflyApproximator", ButterflyApproximator())
