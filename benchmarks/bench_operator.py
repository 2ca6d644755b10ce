"""Fitting the DFT given as an FFT operator, without forming it.

Per size ``n``, in a fresh subprocess each (so that the peak RSS is the case's):

- ``sketch``: ``ButterflyApproximator(permutation="bit-reversal").fit(op)``
  with ``op`` a ``LinearOperator`` whose products are ``scipy.fft.fft`` and
  ``n * ifft`` (shared probes + generalized Nystrom at the root split);
- ``dense``: form the matrix from ``n`` products (``op @ I`` in batches), then
  ``butterfly_factorize(F, permutation="bit-reversal")`` (no error computed);
- ``lazylinop``: ``ksd(aslazylinop(op) @ bitrev(n).T, Chain.square_dyadic,
  ortho=True, order="balanced")`` on the same operator (lazylinop's own
  matrix-free path), under a time limit.

Every case reports the wall time, the peak RSS of its process, the forward and
adjoint products of the operator, and the relative error
``||(F - F_hat) G||_F / ||F G||_F`` on 8 fresh Gaussian probes (fft gives
``F G`` exactly). Writes ``benchmarks/results/operator.md``.

    python -m benchmarks.bench_operator                      # full run
    python -m benchmarks.bench_operator --sizes 4096 --methods sketch
    python -m benchmarks.bench_operator --case sketch --n 65536   # one case
"""

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results" / "operator.md"
RECORDS = RESULTS.with_suffix(".json")
METHODS = ("sketch", "dense", "lazylinop")


def fft_operator(n, counter):
    """The DFT (``scipy.fft.fft``) as a LinearOperator that counts its products."""
    from scipy.fft import fft, ifft
    from scipy.sparse.linalg import LinearOperator

    def matmat(X):
        counter["forward"] += 1 if X.ndim == 1 else X.shape[1]
        return fft(X, axis=0)

    def rmatmat(Y):
        counter["adjoint"] += 1 if Y.ndim == 1 else Y.shape[1]
        return n * ifft(Y, axis=0)

    return LinearOperator(
        (n, n),
        dtype=np.complex128,
        matvec=matmat,
        rmatvec=rmatmat,
        matmat=matmat,
        rmatmat=rmatmat,
    )


def probe_error(fitted, n, n_probes=8):
    """``||(F - F_hat) G|| / ||F G||`` on fresh Gaussian probes."""
    from scipy.fft import fft

    G = np.random.default_rng(12345).standard_normal((n, n_probes))
    ref = fft(G, axis=0)
    return float(np.linalg.norm(ref - fitted @ G) / np.linalg.norm(ref))


def run_case(method, n):
    """One case in this process; returns its record."""
    from skbutterfly import ButterflyApproximator, butterfly_factorize

    counter = {"forward": 0, "adjoint": 0}
    op = fft_operator(n, counter)
    start = time.perf_counter()
    extra = {}
    if method == "sketch":
        est = ButterflyApproximator(permutation="bit-reversal").fit(op)
        fitted = est.operator_
        extra["estimated_error"] = est.relative_error_
    elif method == "dense":
        F = np.empty((n, n), np.complex128)
        for s in range(0, n, 256):
            eye = np.zeros((n, min(256, n - s)), np.complex128)
            eye[np.arange(s, s + eye.shape[1]), np.arange(eye.shape[1])] = 1
            F[:, s : s + eye.shape[1]] = op.matmat(eye)
        extra["form_time"] = time.perf_counter() - start
        fitted = butterfly_factorize(F, permutation="bit-reversal")
        del F
    else:
        warnings.filterwarnings("ignore")
        from lazylinop import aslazylinop
        from lazylinop.basicops import bitrev
        from lazylinop.butterfly import Chain, ksd

        # ksd factorizes F P^T (P = bitrev(n), an involution); the fit of F
        # is the result times P, applied lazily.
        P = bitrev(n)
        A = aslazylinop(op) @ P.T
        fitted = ksd(A, Chain.square_dyadic((n, n)), ortho=True, order="balanced")
        fitted = fitted @ P
    elapsed = time.perf_counter() - start
    products = dict(counter)
    error = probe_error(fitted, n)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return {
        "method": method,
        "n": n,
        "time": elapsed,
        "peak_rss": peak,
        "forward": products["forward"],
        "adjoint": products["adjoint"],
        "error": error,
        **extra,
    }


def run_subprocess(method, n, timeout):
    cmd = [sys.executable, "-m", "benchmarks.bench_operator"]
    cmd += ["--case", method, "--n", str(n)]
    try:
        out = subprocess.run(
            cmd, capture_output=True, text=True, timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired:
        return {"method": method, "n": n, "status": f"> {timeout:.0f} s (stopped)"}
    lines = [line for line in out.stdout.splitlines() if line.startswith("{")]
    if out.returncode or not lines:
        tail = (out.stderr.strip().splitlines() or ["?"])[-1]
        return {"method": method, "n": n, "status": f"failed: {tail}"}
    return json.loads(lines[-1])


NOTES = """\
Notes (2026-12-04 run; rows of earlier invocations are kept in operator.json):

- The full table came from `--sizes 1024,4096,16384,65536 --lazylinop-max 4096
  --timeout 1200` (load average 2.6-5.8 on the 2 cores: other engineers' test
  runs), then `--sizes 16384 --methods lazylinop --lazylinop-max 16384`.
  An earlier n = 65536 sketch run under a load of about 7-11 took 163 s (peak
  4.46 GiB, same products and error): the time is load-sensitive, memory and
  products are not.
- sketch: `ButterflyApproximator(permutation="bit-reversal").fit(op)`; products
  include the 10 held-back error probes. dense: forming with `op @ I` in
  batches of 256 columns, then `butterfly_factorize`; at n = 65536 the matrix
  alone is 64 GiB (not attempted). lazylinop: `ksd` on the lazy operator (one
  iterative SVD per block, every step a full operator product): 10 n products.
- n = 2**18 does not fit on this 24 GiB machine: the two sketches hold
  `(1 + 2) (rank + 4) n**1.5` numbers, 2.0e9 complex128 = 32 GiB.
"""


def _gib(b):
    return f"{b / 2**30:.2f} GiB"


def write_report(records, note):
    rows = [
        "| n | method | time (s) | peak RSS | forward | adjoint | products / n "
        "| error (8 probes) | estimated error |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in records:
        if "status" in r:
            rows.append(
                f"| {r['n']} | {r['method']} | {r['status']} |  |  |  |  |  |  |"
            )
            continue
        total = r["forward"] + r["adjoint"]
        est = r.get("estimated_error")
        form = f" (forming {r['form_time']:.1f})" if "form_time" in r else ""
        rows.append(
            f"| {r['n']} | {r['method']} | {r['time']:.1f}{form} | "
            f"{_gib(r['peak_rss'])} | {r['forward']} | {r['adjoint']} | "
            f"{total / r['n']:.3f} | {r['error']:.1e} | "
            f"{'' if est is None else f'{est:.1e}'} |"
        )
    text = "\n".join(
        [
            "# Fitting the DFT given as an FFT operator (benchmarks/bench_operator.py)",
            "",
            note,
            "",
            *rows,
            "",
            NOTES,
        ]
    )
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(text)
    print(text)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--case", choices=METHODS)
    parser.add_argument("--n", type=int)
    parser.add_argument("--sizes", default="1024,4096,16384,65536")
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument("--dense-max", type=int, default=16384)
    parser.add_argument("--lazylinop-max", type=int, default=4096)
    parser.add_argument("--timeout", type=float, default=1800)
    args = parser.parse_args(argv)
    if args.case:
        print(json.dumps(run_case(args.case, args.n)))
        return
    methods = args.methods.split(",")
    records = []
    for n in (int(s) for s in args.sizes.split(",")):
        for method in methods:
            if method == "dense" and n > args.dense_max:
                continue
            if method == "lazylinop" and n > args.lazylinop_max:
                continue
            record = run_subprocess(method, n, args.timeout)
            print(record, flush=True)
            records.append(record)
    # Records of earlier runs are kept unless this run redid their case.
    done = {(r["method"], r["n"]) for r in records}
    if RECORDS.exists():
        old = json.loads(RECORDS.read_text())
        records += [r for r in old if (r["method"], r["n"]) not in done]
    records.sort(key=lambda r: (r["n"], METHODS.index(r["method"])))
    RECORDS.parent.mkdir(exist_ok=True)
    RECORDS.write_text(json.dumps(records, indent=1))
    load = os.getloadavg()
    note = (
        f"Machine: {platform.machine()}, {os.cpu_count()} cores, Python "
        f"{platform.python_version()}; load average at the end "
        f"{load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f} (other engineers' jobs "
        "share the 2 cores: times are noisy, compare within a row group). "
        "Command: `python -m benchmarks.bench_operator "
        f"{' '.join(argv or sys.argv[1:])}`."
    )
    write_report(records, note)


if __name__ == "__main__":
    main()
