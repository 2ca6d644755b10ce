"""Worker process: runs benchmark tasks sent as JSON lines on stdin.

``python -m benchmarks._worker`` answers each task with one JSON line on the
protocol stream (the original stdout); anything the libraries print, at the
Python or the C level, goes to stderr. ``--once`` runs a single task and exits
(used for the memory measurements, one fresh process per fit).
"""

import gc
import json
import os
import statistics
import sys
import time
import traceback

import numpy as np

from benchmarks._cases import build_input, dtype_of
from benchmarks._methods import METHODS

_loaded = set()
_warm = set()
_cache = {}


def _method(name, warm=True):
    method = METHODS[name]
    if name not in _loaded:
        method.load()
        _loaded.add(name)
    if warm and name not in _warm:
        method.warmup()
        _warm.add(name)
    return method


def _input(spec):
    key = json.dumps(spec, sort_keys=True)
    if key not in _cache:
        _cache.clear()
        gc.collect()
        _cache[key] = build_input(spec)
    return _cache[key]


def _time_fit(method, A, spec, repeats, budget):
    times, cpu, model = [], [], None
    total = 0.0
    for _ in range(max(1, repeats)):
        model = None
        gc.collect()
        start, start_cpu = time.perf_counter(), time.process_time()
        model = method.fit(A, spec)
        elapsed = time.perf_counter() - start
        cpu.append(time.process_time() - start_cpu)
        times.append(elapsed)
        total += elapsed
        if total >= budget:
            break
    return times, cpu, model


def _autorange(f, X, min_time):
    """Loops per sample so that one sample takes at least ``min_time``."""
    number = 1
    while True:
        start = time.perf_counter()
        for _ in range(number):
            f(X)
        elapsed = time.perf_counter() - start
        if elapsed >= min_time or number >= 1 << 16:
            return number
        number *= 2 if elapsed == 0 else max(2, int(1.2 * min_time / elapsed))


def _time_apply(method, model, A, spec, batches, repeats, min_time):
    f = method.prepare_apply(model, A, spec)
    rng = np.random.default_rng(1)
    out = {}
    for k in batches:
        X = rng.standard_normal((spec["n"], k))
        if dtype_of(spec).kind == "c":
            X = X + 1j * rng.standard_normal((spec["n"], k))
        X = np.ascontiguousarray(X.astype(dtype_of(spec)))
        Y = np.asarray(f(X))  # warm-up, and a check against the dense product
        ref = A @ X
        err = float(np.linalg.norm(Y - ref) / np.linalg.norm(ref))
        number = _autorange(f, X, min_time)
        samples = []
        for _ in range(max(1, repeats)):
            start = time.perf_counter()
            for _ in range(number):
                f(X)
            samples.append((time.perf_counter() - start) / number)
        out[str(k)] = {
            "median": statistics.median(samples),
            "times": samples,
            "loops": number,
            "error": err,
        }
    return out


def _loadavg():
    try:
        with open("/proc/loadavg") as f:
            return float(f.read().split()[0])
    except (OSError, ValueError):
        return None


def _peak_rss_bytes():
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux


def _proc_status(field):
    """``VmRSS`` / ``VmHWM`` of this process in bytes (None off Linux)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def _reset_peak():
    """Reset the peak RSS (VmHWM) to the current RSS; False when not possible."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        return False
    return _proc_status("VmHWM") is not None


def run_task(task):
    kind, spec = task["kind"], task["spec"]
    method = METHODS[task["method"]]
    result = {"id": task["id"], "status": "ok"}
    if kind in ("memory", "baseline"):
        A = np.load(task["input_path"])
        method = _method(task["method"], warm=kind == "memory")
        gc.collect()
        if kind == "memory":
            result["rss_before"] = _proc_status("VmRSS")
            reset = _reset_peak()
            start = time.perf_counter()
            model = method.fit(A, spec)
            result["time"] = time.perf_counter() - start
            if reset:
                result["hwm_fit"] = _proc_status("VmHWM")
            del model
        result["peak_rss"] = _peak_rss_bytes()
        result["input_bytes"] = int(A.nbytes)
        return result
    A = _input(spec)
    method = _method(task["method"])
    result["version"] = method.version()
    model = None
    if kind == "fit":
        result["loadavg"] = _loadavg()
        times, cpu, model = _time_fit(
            method, A, spec, task.get("repeats", 3), task.get("budget", 1e9)
        )
        result["times"] = times
        result["cpu_times"] = cpu
        result["median"] = statistics.median(times)
        result["error"] = method.error(model, A, spec)
        result["n_params"] = method.n_params(model, spec)
    if task.get("apply_batches"):
        if model is None and method.fits:  # apply only: fit once, untimed
            model = method.fit(A, spec)
        result["apply"] = _time_apply(
            method,
            model,
            A,
            spec,
            task["apply_batches"],
            task.get("apply_repeats", 5),
            task.get("apply_min_time", 0.05),
        )
    return result


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    once = "--once" in argv
    proto = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)  # C-level prints of the libraries go to stderr
    sys.stdout = sys.stderr
    for line in sys.stdin:
        if not line.strip():
            continue
        task = json.loads(line)
        try:
            result = run_task(task)
        except Exception as exc:  # a peer's exception is a result, not a failure
            result = {
                "id": task["id"],
                "status": "error",
                "error": f"{type(exc).__name__}: {exc}"[:500],
                "traceback": traceback.format_exc()[-2000:],
            }
        proto.write(json.dumps(result) + "\n")
        proto.flush()
        if once:
            break


if __name__ == "__main__":
    main()
