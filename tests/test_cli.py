import subprocess
import sys

import numpy as np
import pytest

from skbutterfly import ButterflyOperator
from skbutterfly.datasets import dft_matrix, make_butterfly


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


def test_fit_then_info(tmp_path):
    A = dft_matrix(32)
    np.save(tmp_path / "A.npy", A)
    out = tmp_path / "A.npz"
    res = run(
        "fit", str(tmp_path / "A.npy"), "--permutation", "bit-reversal", "-o", str(out)
    )
    assert res.returncode == 0, res.stderr
    assert "tree level 1" in res.stdout  # progress display
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
        (b"not numpy at all", "not a readable .npy"),
        ("1d", "2-D"),
        ("nan", "NaN"),
    ],
)
def test_fit_bad_files(tmp_path, content, match):
    path = tmp_path / "bad.npy"
    if content == "1d":
        np.save(path, np.ones(4))
    elif content == "nan":
        np.save(path, np.array([[1.0, np.nan], [1.0, 1.0]]))
    elif content is not None:
        path.write_bytes(content)
    res = run("fit", str(path), "-o", str(tmp_path / "o.npz"))
    assert res.returncode == 1
    assert match in res.stderr
    assert "Traceback" not in res.stderr
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
