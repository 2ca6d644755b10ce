import subprocess
import sys

import numpy as np
import pytest

from skbutterfly import ButterflyOperator
from skbutterfly.datasets import dft_matrix, hadamard_matrix, make_butterfly


def run(*args, cwd=None):
    return subprocess.run(
        [sys.executable, "-m", "skbutterfly._cli", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=300,
    )


def test_demo_runs_and_prints_table():
    res = run("demo", "--n", "64", "--vectors", "8")
    assert res.returncode == 0, res.stderr
    for word in [
        "DFT",
        "Hadamard",
        "Cauchy kernel",
        "rel. error",
        "compression",
        "apply speed-up",
    ]:
        assert word in res.stdout
    dft_line = next(line for line in res.stdout.splitlines() if line.startswith("DFT"))
    error = float(dft_line.split("|")[4])
    assert error < 1e-12
    # A transform whose size is not a power of two, and the real DCT at rank 2.
    rows = {
        (line.split("|")[0].strip(), line.split("|")[1].strip()): line.split("|")
        for line in res.stdout.splitlines()
        if "|" in line and "x" in line.split("|")[1]
    }
    assert float(rows[("DFT", "100x100")][4]) < 1e-12
    assert float(rows[("DCT-II", "64x64")][4]) < 1e-12
    assert rows[("DCT-II", "64x64")][3].strip() == "2"


def test_fit_then_info(tmp_path):
    A = dft_matrix(32)
    np.save(tmp_path / "A.npy", A)
    out = tmp_path / "A.npz"
    res = run(
        "fit", str(tmp_path / "A.npy"), "--permutation", "bit-reversal", "-o", str(out)
    )
    assert res.returncode == 0, res.stderr
    # progress runs to the end: every split counted, then the error, then done
    assert [f"split {k} of 4" in res.stdout for k in range(1, 5)] == [True] * 4
    lines = res.stdout.splitlines()
    assert "done: relative error" in lines[-2] and lines[-1].startswith("depth 5")
    assert res.stderr == ""  # an exact fit: no warning
    op = ButterflyOperator.load(out)
    assert np.linalg.norm(op.toarray() - A) < 1e-12 * np.linalg.norm(A)
    res = run("info", str(out), "--check", str(tmp_path / "A.npy"))
    assert res.returncode == 0, res.stderr
    assert "depth: 5" in res.stdout and "relative error" in res.stdout


def test_fit_depth_rank_options(tmp_path):
    A = make_butterfly(64, depth=2, rank=3, random_state=0)
    np.save(tmp_path / "B.npy", A)
    res = run(
        "fit",
        str(tmp_path / "B.npy"),
        "--depth",
        "2",
        "--rank",
        "3",
        "-q",
        "-o",
        str(tmp_path / "B.npz"),
    )
    assert res.returncode == 0, res.stderr
    op = ButterflyOperator.load(tmp_path / "B.npz")
    assert op.depth == 2
    assert np.linalg.norm(op.toarray() - A) < 1e-10 * np.linalg.norm(A)


@pytest.mark.parametrize(
    "content, match",
    [
        (None, "no such file"),
        (b"not numpy at all", "not a .npy file"),
        (b"1.0,2.0\n3.0,4.0\n", "not a .npy file"),
        ("object", "never unpickles"),
        ("truncated", "damaged .npy file"),
        ("1d", "2-D"),
        ("nan", "NaN"),
    ],
)
def test_fit_bad_files(tmp_path, content, match):
    path = tmp_path / "bad.npy"
    if content == "1d":
        np.save(path, np.ones(4))
    elif content == "object":
        np.save(path, np.array([[{"a": 1}]], dtype=object), allow_pickle=True)
    elif content == "truncated":
        np.save(path, np.ones((64, 64)))
        path.write_bytes(path.read_bytes()[:300])
    elif content == "nan":
        np.save(path, np.array([[1.0, np.nan], [1.0, 1.0]]))
    elif content is not None:
        path.write_bytes(content)
    res = run("fit", str(path), "-o", str(tmp_path / "o.npz"))
    assert res.returncode == 1
    assert match in res.stderr
    assert "Traceback" not in res.stderr and "allow_pickle" not in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1


def test_fit_bad_parameter(tmp_path):
    np.save(tmp_path / "A.npy", np.eye(16))
    res = run(
        "fit", str(tmp_path / "A.npy"), "--depth", "9", "-o", str(tmp_path / "o.npz")
    )
    assert res.returncode == 1
    assert "valid depths are 1..4" in res.stderr and "Traceback" not in res.stderr


def test_info_bad_files(tmp_path):
    np.savez(tmp_path / "foreign.npz", x=np.ones(3))
    res = run("info", str(tmp_path / "foreign.npz"))
    assert res.returncode == 1 and "not a skbutterfly operator" in res.stderr
    (tmp_path / "broken.npz").write_bytes(b"PK\x03\x04garbage")
    res = run("info", str(tmp_path / "broken.npz"))
    assert res.returncode == 1 and "Traceback" not in res.stderr
    res = run("info", str(tmp_path / "missing.npz"))
    assert res.returncode == 1 and "no such file" in res.stderr


def test_usage_error_exit_code():
    res = run("fit")
    assert res.returncode == 2


def test_fit_poor_fit_prints_the_hint_as_options(tmp_path):
    np.save(tmp_path / "F.npy", dft_matrix(64))
    res = run("fit", str(tmp_path / "F.npy"), "-q", "-o", str(tmp_path / "F.npz"))
    assert res.returncode == 0, res.stderr
    assert "relative error 9." in res.stdout  # about 0.9: far from a butterfly
    (warning,) = res.stderr.strip().splitlines()
    assert warning.startswith("skbutterfly: warning: the butterfly fit has")
    assert "--permutation auto" in warning and "--permutation identify" in warning
    assert "--rank 2" in warning and "TruncatedSVD" in warning


def test_fit_model_larger_than_dense_warns(tmp_path):
    np.save(tmp_path / "B.npy", make_butterfly(16, depth=2, rank=3, random_state=0))
    res = run(
        "fit",
        str(tmp_path / "B.npy"),
        "--depth",
        "2",
        "--rank",
        "3",
        "-q",
        "-o",
        str(tmp_path / "B.npz"),
    )
    assert res.returncode == 0, res.stderr
    assert "0.7x compression" in res.stdout
    assert "at least as many as the dense 16x16 matrix" in res.stderr


@pytest.mark.parametrize("name", ["out.txt", "out", "out.npy"])
def test_fit_output_must_end_in_npz(tmp_path, name):
    np.save(tmp_path / "A.npy", np.eye(16))
    res = run("fit", str(tmp_path / "A.npy"), "-o", str(tmp_path / name))
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert "does not end in .npz" in res.stderr
    assert list(tmp_path.iterdir()) == [tmp_path / "A.npy"]  # nothing written


def test_fit_writes_the_name_it_prints(tmp_path):
    np.save(tmp_path / "A.npy", hadamard_matrix(16))
    out = tmp_path / "H.npz"
    res = run("fit", str(tmp_path / "A.npy"), "-q", "-o", str(out))
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip().endswith(f"-> {out}")
    assert sorted(tmp_path.iterdir()) == [tmp_path / "A.npy", out]


@pytest.mark.parametrize(
    "args, match",
    [
        (["demo", "--vectors", "-1"], "argument --vectors: -1 is not an integer >= 1"),
        (["demo", "--vectors", "x"], "argument --vectors: 'x' is not an integer"),
        (["demo", "--n", "6"], "argument --n: 6 is not a power of two"),
        (["demo", "--n", "2"], "argument --n: 2 is not an integer >= 4"),
        (["fit", "A.npy", "-o", "o.npz", "--depth", "0"], "argument --depth"),
        (["fit", "A.npy", "-o", "o.npz", "--rank", "-2"], "argument --rank"),
    ],
)
def test_bad_option_values_are_usage_errors(args, match):
    res = run(*args)
    assert res.returncode == 2
    assert match in res.stderr and "Traceback" not in res.stderr


def test_bad_permutation_name_names_the_parameter(tmp_path):
    np.save(tmp_path / "A.npy", np.eye(16))
    res = run(
        "fit",
        str(tmp_path / "A.npy"),
        "--permutation",
        "bitreversal",
        "-o",
        str(tmp_path / "o.npz"),
    )
    assert res.returncode == 1 and "Traceback" not in res.stderr
    assert "'permutation' parameter" in res.stderr and "bit-reversal" in res.stderr


def test_every_option_has_help():
    from skbutterfly._cli import _parser

    parser = _parser()
    subparsers = next(a for a in parser._actions if a.choices and a.dest == "command")
    for name, sub in subparsers.choices.items():
        for action in sub._actions:
            assert action.help, (name, action.dest)


def test_info_damaged_file_gives_a_reason(tmp_path, capsys):
    from skbutterfly import butterfly_factorize
    from skbutterfly._cli import main

    butterfly_factorize(hadamard_matrix(64)).save(tmp_path / "ok.npz")
    data = (tmp_path / "ok.npz").read_bytes()
    lines = set()
    for i in range(0, len(data), 7):
        damaged = bytearray(data)
        damaged[i] ^= 0xFF
        (tmp_path / "bad.npz").write_bytes(bytes(damaged))
        if main(["info", str(tmp_path / "bad.npz")]) == 0:
            capsys.readouterr()
            continue
        (line,) = capsys.readouterr().err.strip().splitlines()
        assert not line.rstrip(" .").endswith(":"), line
        lines.add(line)
    # a bare EOFError (the data ends early) is among them, and has a reason
    assert any("the data ends early" in line for line in lines)
