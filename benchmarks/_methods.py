"""The methods under test: how each one fits, applies and is scored.

Every method is imported lazily inside the worker process that runs it, so that
imports are never timed and a crash of a peer only takes its worker down.
"""

import math

import numpy as np

from benchmarks._cases import SQUARE_DYADIC, bit_reversal, dtype_of, uses_bit_reversal


def _is_power_of_two(n):
    return n >= 2 and n & (n - 1) == 0


def _rel(B, A):
    norm = np.linalg.norm(A)
    return float(np.linalg.norm(A - B) / norm) if norm else float(np.linalg.norm(B))


class Method:
    """Base class; ``name`` is the key used in tasks and results."""

    name = ""
    label = ""
    family = ""  # worker process family
    fits = True
    peer = False

    def supports(self, spec, kind="fit"):
        """None when the method runs on ``spec``, else the reason it does not."""
        return None

    def load(self):
        """Import the library (never timed)."""

    def version(self):
        return ""

    def fit(self, A, spec):
        raise NotImplementedError

    def error(self, model, A, spec):
        raise NotImplementedError

    def n_params(self, model, spec):
        return None

    def prepare_apply(self, model, A, spec):
        """A callable ``X -> model @ X`` (set up outside the timing)."""
        raise NotImplementedError

    def warmup(self):
        """A tiny fit so that one-off lazy initialisation is not timed."""
        if not self.fits:
            return
        from benchmarks._cases import build_input, make_case

        for case in ("gaussian", "dft"):
            spec = make_case(case, 32)
            if self.supports(spec) is None:
                self.fit(build_input(spec), spec)


class Skbutterfly(Method):
    name = "skbutterfly"
    label = "skbutterfly"
    family = "skbutterfly"

    def load(self):
        import skbutterfly
        from skbutterfly._factorize import relative_error

        self._sb = skbutterfly
        self._relative_error = relative_error

    def version(self):
        return self._sb.__version__

    def fit(self, A, spec):
        return self._sb.butterfly_factorize(
            A,
            depth=spec["depth"],
            rank=spec["rank"],
            permutation="bit-reversal" if uses_bit_reversal(spec) else None,
        )

    def error(self, model, A, spec):
        return self._relative_error(model, A)

    def n_params(self, model, spec):
        return int(model.n_params)

    def prepare_apply(self, model, A, spec):
        return lambda X: model @ X


class PyfaustButterfly(Method):
    name = "pyfaust-bbtree"
    label = "pyfaust butterfly bbtree"
    family = "pyfaust"
    peer = True

    def supports(self, spec, kind="fit"):
        if spec["m"] != spec["n"] or not _is_power_of_two(spec["n"]):
            return "square power-of-two sizes only"
        if spec["case"] not in SQUARE_DYADIC:
            return "square dyadic rank-1 chain only"
        if dtype_of(spec) == np.complex64:
            return "complex64 not supported by pyfaust"
        if spec["n"] < 8:
            return "sizes < 8 crash pyfaust"
        return None

    def load(self):
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import pyfaust
            import pyfaust.fact
        self._pyfaust = pyfaust

    def version(self):
        return self._pyfaust.version()

    def fit(self, A, spec):
        perm = "bitrev" if uses_bit_reversal(spec) else None
        return self._pyfaust.fact.butterfly(A, type="bbtree", perm=perm)

    def error(self, model, A, spec):
        return _rel(model.toarray(), A)

    def n_params(self, model, spec):
        return int(model.nnz_sum())

    def prepare_apply(self, model, A, spec):
        return lambda X: model @ X


class PyfaustFdb(PyfaustButterfly):
    name = "pyfaust-fdb"
    label = "pyfaust fdb"

    def supports(self, spec, kind="fit"):
        if dtype_of(spec) == np.complex64:
            return "complex64 not supported by pyfaust"
        if min(spec["m"], spec["n"]) < 8:
            return "sizes < 8 crash pyfaust"
        return None

    def fit(self, A, spec):
        depth = spec["depth"]
        if depth is None:
            depth = int(math.log2(spec["n"]))
        return self._pyfaust.fact.fdb(
            A,
            n_factors=depth,
            rank=spec["rank"],
            orthonormalize=True,
            hierarchical_order="balanced",
            bit_rev_perm=uses_bit_reversal(spec),
        )


class LazylinopKsd(Method):
    name = "lazylinop-ksd"
    label = "lazylinop ksd"
    family = "lazylinop"
    peer = True

    def load(self):
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import lazylinop
            from lazylinop.butterfly import Chain, ksd
        self._lazylinop = lazylinop
        self._Chain, self._ksd = Chain, ksd

    def version(self):
        return getattr(self._lazylinop, "__version__", "")

    def _chain(self, spec):
        m, n = spec["m"], spec["n"]
        if spec["case"] in SQUARE_DYADIC:
            return self._Chain.square_dyadic((m, n))
        if spec["case"] == "monarch":
            return self._Chain.monarch((m, n))
        # Same architecture as skbutterfly's (the chain builder is not timed).
        from skbutterfly._chain import resolve_architecture

        chain, padded = resolve_architecture((m, n), spec["depth"], spec["rank"], None)
        if padded != (m, n):
            raise ValueError(f"no unpadded chain for {(m, n)}")
        return self._Chain([tuple(int(v) for v in p) for p in chain])

    def _target(self, A, spec):
        if uses_bit_reversal(spec):
            return A[:, bit_reversal(spec["n"])]
        return A

    def fit(self, A, spec):
        chain = self._chain(spec)
        return self._ksd(self._target(A, spec), chain, ortho=True, order="balanced")

    def error(self, model, A, spec):
        return _rel(model.toarray(), self._target(A, spec))

    def n_params(self, model, spec):
        chain = self._chain(spec)
        return int(sum(a * b * c * d for a, b, c, d in chain.ks_patterns))

    def prepare_apply(self, model, A, spec):
        if uses_bit_reversal(spec):
            # (A P) P^T X = A X: the permutation of the input rows is timed.
            perm = bit_reversal(spec["n"])
            return lambda X: model @ X[perm]
        return lambda X: model @ X


class Dense(Method):
    """Dense numpy: the apply baseline, and one pass over A as the fit floor."""

    name = "numpy"
    label = "dense numpy"
    family = "numpy"
    fits = False

    def load(self):
        pass

    def version(self):
        return np.__version__

    def fit(self, A, spec):
        # One pass over the matrix: the physical floor of any fit.
        return A.copy()

    def error(self, model, A, spec):
        return 0.0

    def n_params(self, model, spec):
        return int(spec["m"] * spec["n"])

    def prepare_apply(self, model, A, spec):
        return lambda X: A @ X


class ScipyFFT(Method):
    name = "scipy-fft"
    label = "scipy.fft.fft"
    family = "numpy"
    fits = False

    def supports(self, spec, kind="fit"):
        if spec["case"] != "dft" or kind != "apply":
            return "apply of the DFT only"
        return None

    def load(self):
        import scipy.fft

        self._fft = scipy.fft.fft

    def version(self):
        import scipy

        return scipy.__version__

    def prepare_apply(self, model, A, spec):
        fft = self._fft
        return lambda X: fft(X, axis=0)


METHODS = {
    m.name: m
    for m in (
        Skbutterfly(),
        PyfaustButterfly(),
        PyfaustFdb(),
        LazylinopKsd(),
        Dense(),
        ScipyFFT(),
    )
}
FIT_METHODS = ("skbutterfly", "pyfaust-bbtree", "pyfaust-fdb", "lazylinop-ksd")
PEERS = ("pyfaust-bbtree", "pyfaust-fdb", "lazylinop-ksd")
APPLY_METHODS = ("skbutterfly", "numpy", "pyfaust-bbtree", "lazylinop-ksd", "scipy-fft")
