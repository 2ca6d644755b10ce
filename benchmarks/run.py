"""Benchmark skbutterfly against pyfaust, lazylinop, dense numpy and scipy.fft.

Run ``python -m benchmarks.run --help``; ``--quick`` is a reduced run of a few
minutes, the default is the full suite (about 20 minutes on two cores). Writes
``results.md``, ``results.json`` and PNG plots under ``benchmarks/results/``.
"""

import argparse
import json
import math
import shlex
import signal
import sys
import tempfile
import time
from pathlib import Path

from benchmarks._cases import (
    CASES,
    SQUARE_DYADIC,
    SWEEP,
    build_input,
    case_key,
    make_case,
)
from benchmarks._methods import APPLY_METHODS, FIT_METHODS, METHODS
from benchmarks._runner import Pool, run_once

GROUPS = ("fit", "apply", "memory")
RESULTS = Path(__file__).resolve().parent / "results"


def _ints(text):
    return [int(v) for v in text.split(",") if v.strip()]


def _names(text, valid, what):
    names = [v.strip() for v in text.split(",") if v.strip()]
    bad = [v for v in names if v not in valid]
    if bad:
        raise SystemExit(f"unknown {what} {bad}; choose from {list(valid)}")
    return names


def parse_args(argv=None):
    p = argparse.ArgumentParser(
        prog="python -m benchmarks.run",
        description=__doc__.splitlines()[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--quick", action="store_true", help="reduced sizes and repeats")
    p.add_argument(
        "--only", default="fit,apply,memory", help="case groups: fit, apply, memory"
    )
    p.add_argument("--cases", default=",".join(CASES), help="fit cases to run")
    p.add_argument(
        "--methods",
        default=",".join((*FIT_METHODS, "numpy", "scipy-fft")),
        help="methods to run",
    )
    p.add_argument(
        "--sizes",
        default=None,
        help="square sizes n (default 256..8192; quick 256,512,1024)",
    )
    p.add_argument(
        "--max-n-ours",
        type=int,
        default=None,
        help="largest n for skbutterfly alone (default 16384; quick 2048)",
    )
    p.add_argument(
        "--extra-sizes",
        default=None,
        help="sizes of the Monarch, rank-4 and float32 cases (default 1024,2048,4096)",
    )
    p.add_argument(
        "--float32-sizes",
        default=None,
        help="sizes of the float32 / complex64 cases (default 1024,4096)",
    )
    p.add_argument(
        "--fdb-max-n",
        type=int,
        default=2048,
        help="largest n of pyfaust fdb on the square dyadic cases (pure numpy, "
        "the slowest peer, same algorithm as lazylinop)",
    )
    p.add_argument(
        "--apply-sizes", default=None, help="sizes of the apply group (1024,4096)"
    )
    p.add_argument(
        "--batches", default=None, help="vectors per apply batch (1,64,1024)"
    )
    p.add_argument("--repeats", type=int, default=None, help="fit runs per case (3)")
    p.add_argument(
        "--budget",
        type=float,
        default=None,
        help="stop repeating a fit once its runs add up to this many seconds (12)",
    )
    p.add_argument(
        "--cap",
        type=float,
        default=None,
        help="skip a fit whose time, extrapolated from the smaller sizes, "
        "exceeds this many seconds (45)",
    )
    p.add_argument(
        "--always-to",
        type=int,
        default=4096,
        help="never skip a fit by extrapolation up to this n (the targets' sizes)",
    )
    p.add_argument(
        "--cap-ours",
        type=float,
        default=None,
        help="the same cap for skbutterfly (150)",
    )
    p.add_argument(
        "--mem-factor",
        type=float,
        default=4.0,
        help="skip a fit when free memory is below this multiple of the input",
    )
    p.add_argument(
        "--blas-threads",
        type=int,
        default=None,
        help="set OPENBLAS/OMP/MKL_NUM_THREADS in every worker (default: the "
        "libraries' own defaults)",
    )
    p.add_argument(
        "--max-load",
        type=float,
        default=0.0,
        help="before each fit of n >= 1024, wait while the 1-minute load average "
        "exceeds this (0: never wait)",
    )
    p.add_argument(
        "--max-wait",
        type=float,
        default=120.0,
        help="longest wait for --max-load before one fit, in seconds",
    )
    p.add_argument("--out", default=str(RESULTS), help="output directory")
    p.add_argument("--no-plots", action="store_true")
    p.add_argument(
        "--report-only",
        action="store_true",
        help="rewrite results.md and the plots from the results.json in --out",
    )
    args = p.parse_args(argv)
    q = args.quick
    if args.sizes is None:
        args.sizes = "256,512,1024" if q else "256,512,1024,2048,4096,8192"
    if args.max_n_ours is None:
        args.max_n_ours = 2048 if q else 16384
    if args.extra_sizes is None:
        args.extra_sizes = "512" if q else "1024,2048,4096"
    if args.float32_sizes is None:
        args.float32_sizes = "512" if q else "1024,4096"
    if args.apply_sizes is None:
        args.apply_sizes = "1024" if q else "1024,4096"
    if args.batches is None:
        args.batches = "1,64" if q else "1,64,1024"
    if args.repeats is None:
        args.repeats = 2 if q else 3
    if args.budget is None:
        args.budget = 4.0 if q else 12.0
    if args.cap is None:
        args.cap = 10.0 if q else 45.0
    if args.cap_ours is None:
        args.cap_ours = 30.0 if q else 150.0
    args.only = _names(args.only, GROUPS, "groups")
    args.cases = _names(args.cases, CASES, "cases")
    args.methods = _names(args.methods, METHODS, "methods")
    for name in ("sizes", "extra_sizes", "float32_sizes", "apply_sizes", "batches"):
        setattr(args, name, _ints(getattr(args, name)))
    return args


# ---------------------------------------------------------------- the plan


def plan_fit(args):
    """Fit tasks in running order: per case and size, every method in turn."""
    methods = [m for m in (*FIT_METHODS, "numpy") if m in args.methods]
    tasks = []

    def add(spec, method):
        tasks.append({"kind": "fit", "method": method, "spec": spec})

    for case in args.cases:
        if case in SQUARE_DYADIC:
            all_sizes = sorted(
                set(args.sizes)
                | {
                    2**k
                    for k in range(
                        int(math.log2(max(args.sizes))) + 1,
                        int(math.log2(args.max_n_ours)) + 1,
                    )
                }
            )
            for n in all_sizes:
                for method in methods:
                    if n > max(args.sizes) and method != "skbutterfly":
                        continue
                    if method == "pyfaust-fdb" and n > args.fdb_max_n:
                        continue
                    add(make_case(case, n), method)
            if case != "noisy-butterfly":
                for n in args.float32_sizes:
                    for method in methods:
                        if method == "pyfaust-fdb" and n > args.fdb_max_n:
                            continue
                        add(make_case(case, n, "float32"), method)
        elif case == "sweep":
            from skbutterfly._chain import resolve_architecture

            n = 256 if args.quick else 1024
            for depth, rank in SWEEP:
                try:
                    _, padded = resolve_architecture((n, n), depth, rank, None)
                except ValueError:
                    continue
                if padded != (n, n):
                    continue
                for method in methods:
                    if method in ("pyfaust-bbtree", "numpy"):
                        continue
                    add(make_case("sweep", n, depth=depth, rank=rank), method)
        elif case == "rect":
            for method in methods:
                if args.quick and method == "pyfaust-fdb":
                    continue  # about 18 s: full run only
                add(make_case("rect", None), method)
        else:
            for n in args.extra_sizes:
                for method in methods:
                    add(make_case(case, n), method)
    return tasks


def plan_apply(args, fit_tasks):
    """Apply timings; attached to a matching fit task when there is one."""
    tasks = []
    for case in ("dft", "hadamard"):
        for n in args.apply_sizes:
            spec = make_case(case, n)
            for method in APPLY_METHODS:
                if method not in args.methods:
                    continue
                if METHODS[method].supports(spec, "apply") is not None:
                    continue
                match = next(
                    (
                        t
                        for t in fit_tasks
                        if t["method"] == method
                        and t["spec"] == spec
                        and METHODS[method].fits
                    ),
                    None,
                )
                if match is not None:
                    match["apply_batches"] = args.batches
                else:
                    tasks.append(
                        {
                            "kind": "apply",
                            "method": method,
                            "spec": spec,
                            "apply_batches": args.batches,
                        }
                    )
    return tasks


def plan_memory(args):
    if args.quick:
        ours = [("dft", 1024), ("monarch", 1024)]
        peers = [("dft", 1024)]
    else:
        ours = [
            ("dft", 1024),
            ("dft", 4096),
            ("hadamard", 4096),
            ("gaussian", 4096),
            ("monarch", 4096),
            ("rank4", 4096),
            ("rect", None),
        ]
        peers = [("dft", 4096), ("gaussian", 4096)]
    tasks = []
    for case, n in ours:
        if "skbutterfly" in args.methods:
            tasks.append(
                {"kind": "memory", "method": "skbutterfly", "spec": make_case(case, n)}
            )
    for case, n in peers:
        for method in ("pyfaust-bbtree", "lazylinop-ksd"):
            spec = make_case(case, n)
            if method in args.methods and METHODS[method].supports(spec) is None:
                tasks.append({"kind": "memory", "method": method, "spec": spec})
    return tasks


# ---------------------------------------------------------------- running


def _free_memory():
    try:
        import psutil

        return psutil.virtual_memory().available
    except ImportError:  # pragma: no cover
        return None


def _input_bytes(spec):
    from benchmarks._cases import dtype_of

    return spec["m"] * spec["n"] * dtype_of(spec).itemsize


class Extrapolator:
    """Predicts a fit's time from the same method and case at smaller sizes."""

    def __init__(self):
        self.history = {}

    def _key(self, task):
        s = task["spec"]
        return (task["method"], s["case"], s["precision"], s["depth"], s["rank"])

    def record(self, task, result):
        hist = self.history.setdefault(self._key(task), [])
        ok = result.get("status") == "ok" and "median" in result
        hist.append((task["spec"]["n"], result.get("median") if ok else None))

    def skip_reason(self, task, cap, always_to=0):
        if task["spec"]["n"] <= always_to:
            return None
        hist = [
            h for h in self.history.get(self._key(task), []) if h[0] < task["spec"]["n"]
        ]
        if not hist:
            return None
        n_last, t_last = hist[-1]
        if t_last is None:
            return f"skipped: failed or skipped at n={n_last}"
        slope = 2.5
        if len(hist) >= 2 and hist[-2][1]:
            n0, t0 = hist[-2]
            slope = min(3.0, max(2.0, math.log(t_last / t0) / math.log(n_last / n0)))
        pred = t_last * (task["spec"]["n"] / n_last) ** slope
        if pred > cap:
            return f"skipped: predicted {pred:.0f} s > cap {cap:.0f} s"
        return None


def _wait_for_load(args, spec):
    if args.max_load <= 0 or spec["n"] < 1024:
        return 0.0
    start = time.perf_counter()
    while time.perf_counter() - start < args.max_wait:
        load = _loadavg()
        if load is None or float(load[0]) <= args.max_load:
            break
        time.sleep(5)
    return time.perf_counter() - start


def run_tasks(tasks, args, log_dir, start_id=0, records=None):
    pool = Pool(log_dir, _worker_env(args))
    extra = Extrapolator()
    records = [] if records is None else records
    t0 = time.perf_counter()
    try:
        for i, task in enumerate(tasks):
            task = dict(task, id=start_id + i)
            spec, method = task["spec"], METHODS[task["method"]]
            label = (
                f"[{i + 1}/{len(tasks)}] {task['kind']:5s} {case_key(spec):28s} "
                f"{task['method']:15s}"
            )
            reason = method.supports(
                spec, "apply" if task["kind"] == "apply" else "fit"
            )
            if reason is None and task["kind"] == "fit":
                cap = args.cap_ours if task["method"] == "skbutterfly" else args.cap
                reason = extra.skip_reason(task, cap, args.always_to)
            free = _free_memory()
            if reason is None and free is not None:
                need = args.mem_factor * _input_bytes(spec)
                if free < need:
                    reason = (
                        f"skipped: {free / 2**30:.1f} GiB free < {args.mem_factor:g} x "
                        f"input ({_input_bytes(spec) / 2**30:.2f} GiB)"
                    )
            if reason is not None:
                status = "unsupported"
                if reason.startswith("skipped: "):
                    status, reason = "skipped", reason.removeprefix("skipped: ")
                result = {"id": task["id"], "status": status, "error": reason}
            else:
                waited = _wait_for_load(args, spec)
                if waited >= 1:
                    task["waited_for_load_s"] = round(waited, 1)
                task.update(repeats=args.repeats, budget=args.budget)
                if args.quick:
                    task.update(apply_repeats=3, apply_min_time=0.02)
                else:
                    task.update(apply_repeats=7, apply_min_time=0.05)
                timeout = max(300.0, 4 * max(args.cap, args.cap_ours) + 60)
                result = pool.run(method.family, task, timeout)
            if task["kind"] == "fit":
                extra.record(task, result)
            record = {**task, **result}
            records.append(record)
            elapsed = time.perf_counter() - t0
            print(f"{elapsed:6.0f}s {label} {_summary(record)}", flush=True)
    finally:
        pool.close()
    return records


def _summary(r):
    if r["status"] != "ok":
        return f"{r['status']}: {r.get('error', '')}"
    parts = []
    if "median" in r:
        parts.append(f"{r['median']:.3f} s (x{len(r['times'])})")
    if r.get("error") is not None and r.get("method") != "numpy":
        parts.append(f"err {r['error']:.3g}")
    for k, v in r.get("apply", {}).items():
        parts.append(f"apply[{k}] {v['median'] * 1e3:.3g} ms")
    return ", ".join(parts)


def _worker_env(args):
    import os

    env = dict(os.environ)
    if args.blas_threads:
        for name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            env[name] = str(args.blas_threads)
    return env


def run_memory(tasks, args, log_dir, start_id, records=None):
    """Each fit in a fresh process; its peak RSS beyond what it held before."""
    records = [] if records is None else records
    env = _worker_env(args)
    with tempfile.TemporaryDirectory(prefix="skb-bench-") as tmp:
        import numpy as np

        paths = {}
        for i, task in enumerate(tasks):
            spec = task["spec"]
            key = case_key(spec)
            if key not in paths:
                paths[key] = str(Path(tmp) / f"input-{len(paths)}.npy")
                np.save(paths[key], build_input(spec))
            record = dict(task, id=start_id + i, input_path=paths[key])
            fit = run_once(record, 600, log_dir, env)
            if fit.get("hwm_fit"):
                # Peak RSS during the fit (VmHWM reset just before it) minus the
                # RSS just before it (imports and input loaded).
                base = {"status": "ok", "peak_rss": fit["rss_before"]}
                fit["peak_during_fit"] = fit["hwm_fit"]
                record["memory_method"] = "VmHWM reset before the fit"
            else:
                # Fallback: a process that imports the library and loads the input.
                base = run_once(dict(record, kind="baseline"), 600, log_dir, env)
                fit["peak_during_fit"] = fit.get("peak_rss")
                record["memory_method"] = "ru_maxrss minus a baseline process"
            record.update(fit)
            record.pop("input_path")
            if fit["status"] == "ok" and base["status"] == "ok":
                record["baseline_rss"] = base["peak_rss"]
                record["extra_bytes"] = fit["peak_during_fit"] - base["peak_rss"]
                record["multiple"] = record["extra_bytes"] / fit["input_bytes"]
                msg = (
                    f"input {fit['input_bytes'] / 2**20:.0f} MiB, fit peak "
                    f"{fit['peak_during_fit'] / 2**20:.0f} MiB, before "
                    f"{base['peak_rss'] / 2**20:.0f} MiB: extra "
                    f"{record['multiple']:.2f} x input"
                )
            else:
                msg = (
                    f"{fit['status']}: {fit.get('error', '')} / "
                    f"baseline {base['status']}"
                )
            records.append(record)
            print(
                f"[{i + 1}/{len(tasks)}] mem   {case_key(spec):28s} "
                f"{task['method']:15s} {msg}",
                flush=True,
            )
    return records


def main(argv=None):
    from benchmarks._report import machine_info, write_outputs

    args = parse_args(argv)
    if args.report_only:
        out = Path(args.out)
        with open(out / "results.json") as f:
            data = json.load(f)
        for r in data["records"]:  # older runs wrote "skipped: " twice
            if r.get("status") == "skipped":
                r["error"] = r.get("error", "").removeprefix("skipped: ")
        print(write_outputs(data["records"], data["meta"], out, not args.no_plots))
        return
    command = "python -m benchmarks.run" + (
        " " + shlex.join(sys.argv[1:] if argv is None else argv)
        if (sys.argv[1:] if argv is None else argv)
        else ""
    )
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    meta = machine_info()
    meta["command"] = command
    meta["started"] = time.strftime("%Y-%m-%d %H:%M:%S %Z")
    start = time.perf_counter()
    fit_tasks = plan_fit(args) if "fit" in args.only else []
    apply_tasks = plan_apply(args, fit_tasks) if "apply" in args.only else []
    mem_tasks = plan_memory(args) if "memory" in args.only else []
    print(
        f"{command}\n{len(fit_tasks)} fit, {len(apply_tasks)} apply, "
        f"{len(mem_tasks)} memory tasks",
        flush=True,
    )
    records = []
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        with tempfile.TemporaryDirectory(prefix="skb-bench-logs-") as log_dir:
            run_tasks(fit_tasks + apply_tasks, args, log_dir, records=records)
            if mem_tasks:
                run_memory(mem_tasks, args, log_dir, len(records), records=records)
    except KeyboardInterrupt:
        meta["interrupted"] = True
        print("\ninterrupted: writing the results measured so far", flush=True)
    meta["elapsed_s"] = time.perf_counter() - start
    meta["load_end"] = _loadavg()
    meta["args"] = {k: v for k, v in vars(args).items()}
    text = write_outputs(records, meta, out, plots=not args.no_plots)
    print()
    print(text)
    print(
        f"\nwrote {out}/results.md, results.json and plots in {meta['elapsed_s']:.0f} s"
    )


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def _loadavg():
    try:
        with open("/proc/loadavg") as f:
            return f.read().split()[:3]
    except OSError:
        return None


if __name__ == "__main__":
    main()
