"""Reliability of persistence: pickle and .npz across processes, damaged files.

``tests/test_operator.py`` covers in-process round trips and structurally
corrupted archives (missing keys, wrong shapes); here: fresh processes, byte
level damage, version numbers, and the command line on damaged files.
"""

import contextlib
import io
import json
import pickle
import random
import subprocess
import sys
import textwrap
import zipfile

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal

from skbutterfly import ButterflyApproximator, ButterflyOperator, butterfly_factorize
from skbutterfly._cli import main
from skbutterfly._operator import FORMAT_NAME, FORMAT_VERSION
from skbutterfly.datasets import dft_matrix, make_butterfly


def run_cli(*args):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main([str(a) for a in args])
        except SystemExit as exc:
            code = exc.code
    return code, out.getvalue(), err.getvalue()


def _estimators():
    """Fitted estimators of several kinds (complex, permuted, padded, ranked)."""
    rng = np.random.default_rng(0)
    return {
        "dft": (ButterflyApproximator(permutation="bit-reversal"), dft_matrix(64)),
        "noisy-rank2": (
            ButterflyApproximator(depth=3, rank=2),
            make_butterfly(64, noise=0.1, random_state=0),
        ),
        "padded-13x20": (ButterflyApproximator(), rng.standard_normal((13, 20))),
        "float32-auto": (
            ButterflyApproximator(permutation="auto"),
            make_butterfly(32, random_state=1).astype(np.float32),
        ),
    }


CHILD = textwrap.dedent(
    """
    import json, pickle, sys
    import numpy as np
    from skbutterfly import ButterflyApproximator, ButterflyOperator
    from skbutterfly.datasets import dft_matrix, make_butterfly

    folder = sys.argv[1]
    report = {}
    with open(f"{folder}/names.json") as f:
        names = json.load(f)
    X = np.load(f"{folder}/X.npy")
    for name in names:
        # 1. objects pickled by the parent: use them here
        with open(f"{folder}/{name}.pkl", "rb") as f:
            est = pickle.load(f)
        Xn = X[:, : est.n_features_in_].astype(est.operator_.dtype)
        np.save(f"{folder}/{name}-transform.npy", est.transform(Xn))
        np.save(f"{folder}/{name}-dense.npy", est.operator_.toarray())
        # 2. .npz written by the parent: load, apply, save again
        op = ButterflyOperator.load(f"{folder}/{name}.npz")
        np.save(f"{folder}/{name}-npz-apply.npy", op @ Xn.T)
        op.save(f"{folder}/{name}-resaved.npz")
        # 3. a fresh fit here, pickled for the parent
        with open(f"{folder}/{name}-params.pkl", "rb") as f:
            params, A = pickle.load(f)
        child = ButterflyApproximator(**params).fit(A)
        with open(f"{folder}/{name}-child.pkl", "wb") as f:
            pickle.dump(child, f)
        report[name] = child.relative_error_
    print(json.dumps(report))
    """
)


def test_pickle_and_npz_round_trips_across_a_fresh_process(tmp_path):
    estimators = _estimators()
    X = np.random.default_rng(1).standard_normal((5, 64))
    np.save(tmp_path / "X.npy", X)
    (tmp_path / "names.json").write_text(json.dumps(list(estimators)))
    fitted = {}
    for name, (est, A) in estimators.items():
        est.fit(A)
        fitted[name] = (est, A)
        with open(tmp_path / f"{name}.pkl", "wb") as f:
            pickle.dump(est, f)
        est.operator_.save(tmp_path / f"{name}.npz")
        with open(tmp_path / f"{name}-params.pkl", "wb") as f:
            pickle.dump((est.get_params(), A), f)
    (tmp_path / "child.py").write_text(CHILD)
    res = subprocess.run(
        [sys.executable, str(tmp_path / "child.py"), str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert res.returncode == 0, res.stderr
    errors = json.loads(res.stdout.strip().splitlines()[-1])

    for name, (est, _) in fitted.items():
        Xn = X[:, : est.n_features_in_].astype(est.operator_.dtype)
        # the parent's pickle, used in the child: same products, bit for bit
        assert_array_equal(
            np.load(tmp_path / f"{name}-transform.npy"), est.transform(Xn)
        )
        assert_array_equal(
            np.load(tmp_path / f"{name}-dense.npy"), est.operator_.toarray()
        )
        # the parent's .npz, used in the child and written back
        assert_array_equal(
            np.load(tmp_path / f"{name}-npz-apply.npy"), est.operator_ @ Xn.T
        )
        back = ButterflyOperator.load(tmp_path / f"{name}-resaved.npz")
        assert back.chain == est.operator_.chain
        for a, b in zip(back.twiddles, est.operator_.twiddles):
            assert_array_equal(a, b)
        assert_array_equal(
            back.col_perm if back.col_perm is not None else [],
            est.operator_.col_perm if est.operator_.col_perm is not None else [],
        )
        # the child's own fit: the same factors as here (deterministic)
        with open(tmp_path / f"{name}-child.pkl", "rb") as f:
            child = pickle.load(f)
        for a, b in zip(child.operator_.twiddles, est.operator_.twiddles):
            assert_array_equal(a, b)
        assert errors[name] == est.relative_error_
        assert_array_equal(child.transform(Xn), est.transform(Xn))


def test_pickled_transposes_and_used_operators():
    """Operators whose product plans were built, and their adjoints, pickle."""
    op = butterfly_factorize(make_butterfly(32, random_state=0, complex=True))
    x = np.arange(32.0)
    y = op @ x  # builds the plan cache
    for obj in [op, op.H, op.T, op.H.H]:
        clone = pickle.loads(pickle.dumps(obj))
        # an unpickled transpose multiplies factor by factor (its source's
        # fused plan is not pickled): equal up to rounding
        assert_allclose(clone @ x, obj @ x, rtol=1e-13, atol=1e-12)
        assert_allclose(clone.toarray(), obj.toarray(), rtol=1e-13, atol=1e-13)
    assert_array_equal(pickle.loads(pickle.dumps(op)) @ x, y)
    unfitted = pickle.loads(pickle.dumps(ButterflyApproximator(depth=3)))
    assert unfitted.get_params()["depth"] == 3


# ------------------------------------------------------- the format version


def test_file_carries_format_name_and_version(tmp_path):
    op = butterfly_factorize(make_butterfly(16, random_state=0))
    op.save(tmp_path / "op.npz")
    with np.load(tmp_path / "op.npz", allow_pickle=False) as data:
        assert str(data["format"]) == FORMAT_NAME
        assert int(data["format_version"]) == FORMAT_VERSION >= 1
        assert data["format_version"].dtype.kind == "i"
    with zipfile.ZipFile(tmp_path / "op.npz") as zf:  # plain arrays, no pickle
        for name in zf.namelist():
            assert name.endswith(".npy")
            header = zf.read(name)[:200]
            assert b"'descr': '|O'" not in header


def _rewrite(path, out, **changes):
    with np.load(path, allow_pickle=False) as data:
        contents = {k: data[k] for k in data.files}
    contents.update(changes)
    np.savez(out, **contents)


def test_newer_format_version_fails_clearly(tmp_path):
    op = butterfly_factorize(make_butterfly(16, random_state=0))
    op.save(tmp_path / "op.npz")
    newer = tmp_path / "newer.npz"
    _rewrite(tmp_path / "op.npz", newer, format_version=np.array(FORMAT_VERSION + 1))
    expected = (
        f"format version {FORMAT_VERSION + 1}; this skbutterfly reads versions "
        f"up to {FORMAT_VERSION}"
    )
    with pytest.raises(ValueError, match=expected):
        ButterflyOperator.load(newer)
    code, _, err = run_cli("info", newer)
    assert code == 1 and expected in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("version", [0, -1, 1.7, "1"])
def test_invalid_format_versions_rejected(tmp_path, version):
    op = butterfly_factorize(make_butterfly(16, random_state=0))
    op.save(tmp_path / "op.npz")
    _rewrite(
        tmp_path / "op.npz", tmp_path / "bad.npz", format_version=np.array(version)
    )
    with pytest.raises(ValueError, match="version"):
        ButterflyOperator.load(tmp_path / "bad.npz")


def test_non_finite_twiddles_rejected_on_load(tmp_path):
    op = butterfly_factorize(make_butterfly(16, random_state=0))
    op.save(tmp_path / "op.npz")
    with np.load(tmp_path / "op.npz") as data:
        t = data["twiddle_1"].copy()
    t[0, 0, 0, 0] = np.nan
    _rewrite(tmp_path / "op.npz", tmp_path / "bad.npz", twiddle_1=t)
    with pytest.raises(ValueError):
        ButterflyOperator.load(tmp_path / "bad.npz")


# ------------------------------------- format 2: checksum and number of factors


def _contents(path):
    with np.load(path, allow_pickle=False) as data:
        return {k: data[k] for k in data.files}


def _resealed(contents):
    """``contents`` with a valid checksum (a consistent forgery, or an edit)."""
    from skbutterfly._operator import _payload_digest

    return {**contents, "checksum": np.array(_payload_digest(contents))}


def _as_version_1(contents):
    """What skbutterfly 0.1 wrote: no checksum, no number of factors."""
    out = {k: v for k, v in contents.items() if k not in ("checksum", "n_factors")}
    return {**out, "format_version": np.array(1)}


@pytest.fixture
def deep_file(tmp_path):
    op = butterfly_factorize(dft_matrix(64), permutation="bit-reversal")
    assert op.depth == 6
    op.save(tmp_path / "op.npz")
    return op, tmp_path / "op.npz"


def _assert_rejected(path, *reasons):
    with pytest.raises(ValueError) as info:
        ButterflyOperator.load(path)
    message = str(info.value)
    assert str(path) in message, message
    assert any(r in message for r in reasons), message
    code, out, err = run_cli("info", path)
    assert code == 1 and not out and "Traceback" not in err
    assert any(r in err for r in reasons), err


def test_issue_reproducer_chain_that_lost_its_last_pattern(tmp_path, deep_file):
    """Loaded as a depth-5 operator before (issue 16, item 4)."""
    _, path = deep_file
    contents = _contents(path)
    cut = {**contents, "chain": contents["chain"][:-1]}
    np.savez(tmp_path / "cut.npz", **cut)
    _assert_rejected(tmp_path / "cut.npz", "checksum does not match")
    # A forged checksum still fails: the stored number of factors disagrees.
    np.savez(tmp_path / "forged.npz", **_resealed(cut))
    _assert_rejected(tmp_path / "forged.npz", "stores 6 factors but its chain lists 5")
    # Forged number of factors too: six twiddles for five patterns.
    forged = _resealed({**cut, "n_factors": np.array(5)})
    np.savez(tmp_path / "forged2.npz", **forged)
    _assert_rejected(tmp_path / "forged2.npz", "holds 6 twiddles but its chain lists 5")
    # The same damage to a version 1 file (no checksum) is caught too.
    np.savez(tmp_path / "v1.npz", **_as_version_1(cut))
    _assert_rejected(tmp_path / "v1.npz", "holds 6 twiddles but its chain lists 5")


def test_changed_values_fail_the_checksum(tmp_path, deep_file):
    _, path = deep_file
    contents = _contents(path)
    for key in ["twiddle_3", "shape", "col_perm", "dtype"]:
        changed = dict(contents)
        value = contents[key].copy()
        if key == "twiddle_3":
            value.flat[5] += 1e-9  # finite, plausible, wrong
        elif key == "shape":
            value = value - np.array([1, 0])  # a cropped operator
        elif key == "col_perm":
            value[[0, 1]] = value[[1, 0]]
        else:
            value = np.array("<c8")
        changed[key] = value
        np.savez(tmp_path / "changed.npz", **changed)
        _assert_rejected(tmp_path / "changed.npz", "checksum does not match")


def test_extra_entries_and_missing_checksum_rejected(tmp_path, deep_file):
    _, path = deep_file
    contents = _contents(path)
    np.savez(tmp_path / "extra.npz", **_resealed({**contents, "note": np.ones(2)}))
    _assert_rejected(tmp_path / "extra.npz", "unexpected entries ['note']")
    without = {k: v for k, v in contents.items() if k != "checksum"}
    np.savez(tmp_path / "nosum.npz", **without)
    _assert_rejected(tmp_path / "nosum.npz", "checksum is missing")
    without = {k: v for k, v in contents.items() if k != "n_factors"}
    np.savez(tmp_path / "nocount.npz", **_resealed(without))
    _assert_rejected(tmp_path / "nocount.npz", "number of factors is missing")


def test_version_1_files_still_load(tmp_path, deep_file):
    op, path = deep_file
    np.savez(tmp_path / "v1.npz", **_as_version_1(_contents(path)))
    loaded = ButterflyOperator.load(tmp_path / "v1.npz")
    assert loaded.chain == op.chain
    assert_array_equal(loaded.col_perm, op.col_perm)
    for a, b in zip(loaded.twiddles, op.twiddles):
        assert_array_equal(a, b)
    code, out, _ = run_cli("info", tmp_path / "v1.npz")
    assert code == 0 and "depth: 6" in out
    # Saving again writes the current version, with its checksum.
    loaded.save(tmp_path / "v2.npz")
    upgraded = _contents(tmp_path / "v2.npz")
    assert int(upgraded["format_version"]) == FORMAT_VERSION == 2
    assert int(upgraded["n_factors"]) == 6 and len(str(upgraded["checksum"])) == 64


def test_every_truncation_names_the_file_and_a_reason(tmp_path, saved):
    _, raw = saved
    path = tmp_path / "cut.npz"
    for length in range(0, len(raw), max(1, len(raw) // 60)):
        path.write_bytes(raw[:length])
        with pytest.raises(ValueError) as info:
            ButterflyOperator.load(path)
        message = str(info.value)
        assert str(path) in message
        reason = message.split(str(path), 1)[1]
        assert reason.strip(" .:") and not message.rstrip(" .").endswith(":"), message


# ------------------------------------------------------- byte-level damage


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    folder = tmp_path_factory.mktemp("saved")
    op = butterfly_factorize(dft_matrix(64), permutation="bit-reversal")
    path = folder / "good.npz"
    op.save(path)
    return op, path.read_bytes()


def test_truncated_files_raise_value_error(tmp_path, saved):
    _, raw = saved
    path = tmp_path / "cut.npz"
    for length in sorted({0, 1, 4, 22, 30, 100, *range(0, len(raw), len(raw) // 40)}):
        path.write_bytes(raw[:length])
        with pytest.raises(ValueError):
            ButterflyOperator.load(path)
        code, _, err = run_cli("info", path)
        assert code == 1 and "Traceback" not in err, (length, err)


def _flipped(raw, seed, count):
    rng = random.Random(seed)
    for _ in range(count):
        damaged = bytearray(raw)
        pos = rng.randrange(len(damaged))
        damaged[pos] ^= 1 << rng.randrange(8)
        yield pos, bytes(damaged)


def _check_damaged(path, op):
    """A damaged file either loads as the same operator or raises ValueError."""
    try:
        loaded = ButterflyOperator.load(path)
    except ValueError:
        return "ValueError"
    assert loaded.chain == op.chain
    for a, b in zip(loaded.twiddles, op.twiddles):
        assert_array_equal(a, b)
    return "identical"


def test_bit_flips_anywhere_raise_value_error_or_load_identically(tmp_path, saved):
    op, raw = saved
    path = tmp_path / "flip.npz"
    for pos, damaged in _flipped(raw, seed=0, count=150):
        path.write_bytes(damaged)
        try:
            _check_damaged(path, op)
        except ValueError:  # pragma: no cover
            raise
        except Exception as exc:
            raise AssertionError(f"flip at byte {pos}: {type(exc).__name__}") from exc
        code, _, err = run_cli("info", path)
        assert code in (0, 1) and "Traceback" not in err


def test_damaged_npy_header_is_a_one_line_cli_error(tmp_path):
    np.save(tmp_path / "A.npy", np.eye(4))
    raw = (tmp_path / "A.npy").read_bytes()
    (tmp_path / "bad.npy").write_bytes(raw.replace(b"}", b" ", 1))
    code, _, err = run_cli("fit", tmp_path / "bad.npy", "-o", tmp_path / "o.npz")
    assert code == 1 and "Traceback" not in err


def test_damaged_npy_payloads_and_headers_through_the_cli(tmp_path):
    """Every damage to a matrix file other than the header-token case above
    ends in exit 1 (one line) or a successful fit, never a traceback."""
    np.save(tmp_path / "A.npy", make_butterfly(8, random_state=0))
    raw = (tmp_path / "A.npy").read_bytes()
    rng = random.Random(1)
    path = tmp_path / "bad.npy"
    for _ in range(80):
        damaged = bytearray(raw)
        pos = rng.randrange(len(raw))
        damaged[pos] = rng.randrange(256)
        if b"}" not in damaged[:128] or b")" not in damaged[:128]:
            continue  # the TokenError case (test above)
        path.write_bytes(bytes(damaged))
        code, _, err = run_cli("fit", path, "-q", "-o", tmp_path / "o.npz")
        assert code in (0, 1), (pos, err)
        assert "Traceback" not in err
        if code == 1:
            assert len(err.strip().splitlines()) == 1
        for cut in (0, 10, 60, len(raw) - 8):
            path.write_bytes(raw[:cut])
            code, _, err = run_cli("fit", path, "-q", "-o", tmp_path / "o.npz")
            assert code == 1 and "Traceback" not in err
