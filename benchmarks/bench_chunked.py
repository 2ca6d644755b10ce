"""Fits of matrices stored in zarr with row chunks: memory and time.

For each size, a noisy butterfly is written to a zarr store chunk by chunk
(never whole in memory), then fresh processes measure, in ``--repeat`` rounds
of the three (read, fit, fit + error side by side, so that each ratio compares
runs made under the same load of a shared machine),

- one read of the data through dask (``da.from_zarr(path).sum().compute()``),
- ``butterfly_factorize(Z)`` (the fit alone) and
  ``ButterflyApproximator().fit(Z)`` (the fit plus its relative error, one
  more pass over the data), each with the process's peak RSS and peak
  anonymous memory growth (``/proc/self/status``: VmHWM, RssAnon),
- the same on a 2-worker ``LocalCluster`` (processes, loopback): the client
  process's memory growth and the wall time.

Stores are written under ``--folder`` and deleted afterwards. Results go to
``benchmarks/results/chunked.md``.

Run from the project root::

    python benchmarks/bench_chunked.py --sizes 16384 --cluster-sizes 8192
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
RESULTS = os.path.join(HERE, "results", "chunked.md")

_MEASURE = r"""
import json, sys, threading, time
args = json.loads(sys.argv[1])

def status():
    out = {}
    with open("/proc/self/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("VmHWM", "VmRSS", "RssAnon"):
                out[key] = int(value.split()[0]) * 1024
    return out

class AnonPeak:
    # RssAnon has no kernel peak counter: sample it every 10 ms.
    def __init__(self):
        self.peak, self.stop = status()["RssAnon"], False
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()
    def run(self):
        while not self.stop:
            self.peak = max(self.peak, status()["RssAnon"])
            time.sleep(0.01)
    def close(self):
        self.stop = True
        self.thread.join()
        return self.peak

import numpy as np
import zarr
import dask.array as da
from skbutterfly import ButterflyApproximator, butterfly_factorize

# Steps of the local fit switched off, to measure what each one buys.
import skbutterfly._chunked as C
import skbutterfly._chunked_error as E
import skbutterfly._chunked_panels as P
variant = args.get("variant", "")
if "serial-reads" in variant:  # no read-ahead: read, then write or solve
    def serial(read, keys, depth=1):
        for key in keys:
            yield read(key)
    C.read_ahead = P.read_ahead = E.read_ahead = serial
if "stats-pass" in variant:  # max|A| and ||A||_F by a pass of their own
    split = C.ChunkedSource.root_split
    def root_split(self, *a, **k):
        self.top
        return split(self, *a, **k)
    C.ChunkedSource.root_split = root_split
if "store-error" in variant:  # the relative error by a pass over the store
    relative_error = C.ChunkedSource.relative_error
    def store_error(self, op):
        self._shared.drop_spill()
        return relative_error(self, op)
    C.ChunkedSource.relative_error = store_error

client = cluster = None
if args["cluster"]:
    from distributed import Client, LocalCluster
    cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                           host="127.0.0.1", dashboard_address=None)
    client = Client(cluster)
Z = zarr.open_array(args["path"], mode="r")
# Warm up imports, thread pools and the cluster on a small store.
ButterflyApproximator().fit(zarr.open_array(args["small"], mode="r"))
if client is not None:
    client.get_task_stream(count=1)  # the scheduler starts recording tasks
with open("/proc/self/clear_refs", "w") as f:
    f.write("5")
base = status()
anon = AnonPeak()
started = time.time()
start = time.perf_counter()
if args["what"] == "read":
    float(da.from_zarr(args["path"]).sum().compute())
    error = None
elif args["what"] == "factorize":
    butterfly_factorize(Z)
    error = None
else:
    error = ButterflyApproximator().fit(Z).relative_error_
elapsed = time.perf_counter() - start
peak_anon = anon.close()
end = status()
workers = None
if client is not None:  # after the memory measurement: the records come back
    records = client.get_task_stream(start=started)
    workers = len({r["worker"] for r in records if "solve_panel" in str(r["key"])})
print(json.dumps({
    "panel_workers": workers,
    "seconds": elapsed,
    "hwm_growth": end["VmHWM"] - base["VmRSS"],
    "anon_growth": peak_anon - base["RssAnon"],
    "error": error,
}))
if client is not None:
    client.close()
    cluster.close()
"""


def write_store(path, n, noise, chunk_rows, seed=0):
    """A noisy random butterfly of size n, written band by band to zarr."""
    import zarr

    from skbutterfly._chain import resolve_architecture
    from skbutterfly._chunked_error import RowsOf
    from skbutterfly._operator import ButterflyOperator

    rng = np.random.default_rng(seed)
    chain, _ = resolve_architecture((n, n), None, 1)
    twiddles = [rng.standard_normal((a, d, b, c)) for a, b, c, d in chain]
    rows_of = RowsOf(ButterflyOperator(twiddles))
    columns = rows_of.columns(0, n)
    Z = zarr.create_array(
        store=path, shape=(n, n), chunks=(chunk_rows, n), dtype="f8", overwrite=True
    )
    for r0 in range(0, n, chunk_rows):
        band = rows_of.rows(r0, r0 + chunk_rows, columns)
        # Gaussian noise of `noise` times the band's RMS (chunk-seeded).
        scale = noise * np.sqrt(np.mean(band**2))
        band += scale * np.random.default_rng([seed, r0]).standard_normal(band.shape)
        Z[r0 : r0 + chunk_rows] = band
    return Z


def measure(what, path, small, cluster=False, variant=""):
    args = json.dumps(
        {
            "what": what,
            "path": path,
            "small": small,
            "cluster": cluster,
            "variant": variant,
        }
    )
    env = {**os.environ, "PYTHONPATH": os.path.dirname(HERE)}
    out = subprocess.run(
        [sys.executable, "-c", _MEASURE, args],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    if out.returncode:
        raise RuntimeError(out.stderr[-3000:])
    return json.loads(out.stdout.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="*", default=[16384])
    parser.add_argument("--cluster-sizes", type=int, nargs="*", default=[8192])
    parser.add_argument("--noise", type=float, default=0.01)
    parser.add_argument("--chunk-mib", type=float, default=32)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument(
        "--steps",
        action="store_true",
        help="also time the one-process fits with each of their steps switched off",
    )
    parser.add_argument("--folder", default=None)
    parser.add_argument("--output", default=RESULTS)
    args = parser.parse_args()
    folder = tempfile.mkdtemp(prefix="bench-chunked-", dir=args.folder)
    rows, steps = [], []
    try:
        small = os.path.join(folder, "small.zarr")
        write_store(small, 256, args.noise, 64)
        plan = [(n, False) for n in args.sizes] + [
            (n, True) for n in args.cluster_sizes
        ]
        for n in sorted({n for n, _ in plan}):
            path = os.path.join(folder, f"A{n}.zarr")
            chunk_rows = max(1, int(args.chunk_mib * 2**20) // (8 * n))
            start = time.perf_counter()
            write_store(path, n, args.noise, chunk_rows)
            written = time.perf_counter() - start
            print(f"n={n}: store written in {written:.1f} s", flush=True)
            for cluster in sorted({c for m, c in plan if m == n}):
                where = "2-worker LocalCluster" if cluster else "one process"
                rounds, loads = [], []
                for _ in range(args.repeat):
                    loads.append(os.getloadavg()[0])
                    rounds.append(
                        {
                            what: measure(what, path, small, cluster)
                            for what in ("read", "factorize", "fit")
                        }
                    )
                    print(n, where, rounds[-1], flush=True)
                loads.append(os.getloadavg()[0])
                rows.append((n, chunk_rows, where, rounds, loads))
                if args.steps and not cluster:
                    steps.append((n, measure_steps(args, path, small)))
            shutil.rmtree(path)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    write_report(args, rows, steps)


# (label, what, variant): the fit without one of its steps, next to the fit.
STEPS = [
    ("`butterfly_factorize`", "factorize", ""),
    ("... statistics by a pass of their own", "factorize", "stats-pass"),
    ("... no read-ahead", "factorize", "serial-reads"),
    ("... both (the previous fit)", "factorize", "stats-pass,serial-reads"),
    ("fit + error (`ButterflyApproximator`)", "fit", ""),
    ("... error by a pass over the store", "fit", "store-error"),
    ("... none of the three", "fit", "stats-pass,serial-reads,store-error"),
]


def measure_steps(args, path, small):
    """Rounds of the read and every variant of :data:`STEPS`, interleaved."""
    rounds = []
    for _ in range(args.repeat):
        read = measure("read", path, small)["seconds"]
        times = [
            measure(what, path, small, variant=v)["seconds"] for _, what, v in STEPS
        ]
        rounds.append((read, times, os.getloadavg()[0]))
        print("steps", rounds[-1], flush=True)
    return rounds


def write_report(args, rows, steps=()):
    uptime = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    mib = 2**20
    sizes = " ".join(map(str, args.sizes))
    cluster_sizes = " ".join(map(str, args.cluster_sizes))
    lines = [
        "# Chunked fits: matrices in zarr with row chunks",
        "",
        f"Produced by `python benchmarks/bench_chunked.py --sizes {sizes} "
        f"--cluster-sizes {cluster_sizes} --repeat {args.repeat}"
        f"{' --steps' if args.steps else ''}` (noise "
        f"{args.noise}, chunks of {args.chunk_mib:g} MiB = whole rows). Each "
        "measurement is a fresh process; a round measures the read, the fit and "
        "the fit with its error one after the other, and the rounds repeat: "
        "times are medians over the rounds, `fit / read` is the median of the "
        "rounds' own ratios (a read and a fit made under the same load). Memory "
        "is the growth over the process's state after a warm-up fit of a small "
        "store, the largest over the rounds: `VmHWM` growth is the peak "
        "resident memory (file pages included), `RssAnon` growth is the peak "
        "anonymous memory (sampled every 10 ms). On the cluster, the figures "
        "are the client process's.",
        "",
        f"Load when written: `{uptime}` (2 cores shared with other engineers' "
        "jobs; the load column gives the 1-minute load average's range during "
        "the rounds).",
        "",
        "| n | matrix | where | one read (`sum`) | `butterfly_factorize` | "
        "fit + error (`ButterflyApproximator`) | fit / read | peak RSS growth | "
        "peak anon growth | relative error | load (1 min) |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for n, _, where, rounds, loads in rows:
        size = n * n * 8

        def median(what, key="seconds", rounds=rounds):
            return float(np.median([r[what][key] for r in rounds]))

        def ratio(what, rounds=rounds):
            return float(
                np.median([r[what]["seconds"] / r["read"]["seconds"] for r in rounds])
            )

        worst = max(r[w]["hwm_growth"] for r in rounds for w in ("factorize", "fit"))
        anon = max(r[w]["anon_growth"] for r in rounds for w in ("factorize", "fit"))
        if "LocalCluster" in where:
            counts = sorted(
                {r[w]["panel_workers"] for r in rounds for w in ("factorize", "fit")}
            )
            where += f" (panel tasks ran on {' or '.join(map(str, counts))} workers)"
        lines.append(
            f"| {n} | {size / 2**30:.2f} GiB | {where} | "
            f"{median('read'):.1f} s | {median('factorize'):.1f} s | "
            f"{median('fit'):.1f} s | "
            f"{ratio('factorize'):.1f}x / {ratio('fit'):.1f}x | "
            f"{worst / mib:.0f} MiB ({worst / size:.3f} of A) | "
            f"{anon / mib:.0f} MiB ({anon / size:.3f} of A) | "
            f"{rounds[-1]['fit']['error']:.4f} | "
            f"{min(loads):.1f} to {max(loads):.1f} |"
        )
    lines.append("")
    lines.append("Every round (seconds: read / factorize / fit + error):")
    lines.append("")
    for n, _, where, rounds, _ in rows:
        cells = ", ".join(
            " / ".join(f"{r[w]['seconds']:.1f}" for w in ("read", "factorize", "fit"))
            for r in rounds
        )
        lines.append(f"- n = {n}, {where}: {cells}")
    for n, rounds in steps:
        reads = [read for read, _, _ in rounds]
        loads = [load for _, _, load in rounds]
        lines += [
            "",
            f"What each step buys (n = {n}, one process, `--steps`): each round "
            "times one read and every variant in turn; medians over "
            f"{len(rounds)} rounds, the ratio is the median of each round's "
            f"variant / read (read {np.median(reads):.1f} s, load "
            f"{min(loads):.1f} to {max(loads):.1f}).",
            "",
            "| variant | seconds | / read |",
            "|---|---|---|",
        ]
        for k, (label, _, _) in enumerate(STEPS):
            times = [t[k] for _, t, _ in rounds]
            ratios = [t[k] / read for read, t, _ in rounds]
            lines.append(
                f"| {label} | {np.median(times):.1f} s | {np.median(ratios):.1f}x |"
            )
    with open(args.output, "w") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
