"""Markdown table, JSON record, plots and the issue-4 targets of a run."""

import json
import math
import os
import platform
from importlib import metadata

from benchmarks._cases import CASES, SQUARE_DYADIC, case_key
from benchmarks._methods import METHODS, PEERS

FIT_COLUMNS = ("skbutterfly", "pyfaust-bbtree", "pyfaust-fdb", "lazylinop-ksd")
APPLY_COLUMNS = ("skbutterfly", "numpy", "pyfaust-bbtree", "lazylinop-ksd", "scipy-fft")
SLOPE_RANGE = (1024, 16384)
TARGET_SPEEDUP = 5.0
EXACT = 1e-12  # errors below this are "equal" (machine precision)

# ---------------------------------------------------------------- machine


def _read(path):
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return ""


def _version(dist):
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "not installed"


def _revision():
    """The project's commit, with "+ local changes" when the tree is dirty."""
    import subprocess

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    try:
        rev = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=root,
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no", "skbutterfly"],
            cwd=root,
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return (rev or "unknown") + (" + local changes to skbutterfly/" if dirty else "")


def machine_info():
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in _read("/proc/cpuinfo").splitlines()
            if line.startswith("model name")
        ),
        platform.processor() or platform.machine(),
    )
    mem = next(
        (
            int(line.split()[1]) * 1024
            for line in _read("/proc/meminfo").splitlines()
            if line.startswith("MemTotal")
        ),
        None,
    )
    blas = []
    try:
        import numpy  # noqa: F401
        from threadpoolctl import threadpool_info

        blas = [
            f"{i.get('internal_api')} {i.get('version')} "
            f"({i.get('num_threads')} threads)"
            for i in threadpool_info()
        ]
    except Exception:  # pragma: no cover - informative only
        pass
    return {
        "revision": _revision(),
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gib": None if mem is None else round(mem / 2**30, 1),
        "os": platform.platform(),
        "python": platform.python_version(),
        "versions": {
            d: _version(d)
            for d in (
                "skbutterfly",
                "numpy",
                "scipy",
                "scikit-learn",
                "pyfaust",
                "lazylinop",
            )
        },
        "blas": blas,
        "load_start": _read("/proc/loadavg").split()[:3],
    }


# ---------------------------------------------------------------- helpers


def _fmt_time(t):
    if t is None:
        return "-"
    if t >= 100:
        return f"{t:.0f}"
    if t >= 0.001:
        return f"{t:.3g}"
    return f"{t:.1e}"


def _fmt_ms(t):
    if t is None:
        return "-"
    ms = t * 1e3
    return f"{ms:.3g}" if ms < 1000 else f"{ms:.0f}"


def _fmt_err(e):
    return "-" if e is None else f"{e:.2e}"


def _status_cell(r):
    return {
        "skipped": "skip",
        "unsupported": "n/a",
        "crash": "CRASH",
        "timeout": "TIMEOUT",
        "error": "ERROR",
    }.get(r["status"], r["status"])


def _ok(r):
    return r is not None and r["status"] == "ok"


def _index(records, kind):
    out = {}
    for r in records:
        if r["kind"] == kind:
            out[(case_key(r["spec"]), r["method"])] = r
    return out


def _shape(spec):
    return str(spec["n"]) if spec["m"] == spec["n"] else f"{spec['m']} x {spec['n']}"


def slope(points):
    """Least-squares slope of log(time) against log(n)."""
    pts = [(math.log(n), math.log(t)) for n, t in points if t and t > 0]
    if len(pts) < 2:
        return None
    mx = sum(x for x, _ in pts) / len(pts)
    my = sum(y for _, y in pts) / len(pts)
    sxx = sum((x - mx) ** 2 for x, _ in pts)
    return sum((x - mx) * (y - my) for x, y in pts) / sxx if sxx else None


def _slope_points(records, method, case, precision="float64"):
    lo, hi = SLOPE_RANGE
    return sorted(
        (r["spec"]["n"], r["median"])
        for r in records
        if r["kind"] == "fit"
        and _ok(r)
        and r["method"] == method
        and r["spec"]["case"] == case
        and r["spec"]["precision"] == precision
        and lo <= r["spec"]["n"] <= hi
    )


# ---------------------------------------------------------------- tables


def fit_table(records, select):
    rows = [r for r in records if r["kind"] == "fit" and select(r)]
    keys = []
    for r in rows:
        k = case_key(r["spec"])
        if k not in keys:
            keys.append(k)
    by = _index(rows, "fit")
    lines = [
        "| case | dtype | n | skbutterfly s | pyfaust bbtree s | pyfaust fdb s "
        "| lazylinop ksd s | one pass (copy) s | faster peer / skbutterfly "
        "| err skbutterfly | err bbtree | err fdb | err lazylinop | params sk / peer |",
        "|---|---|---|" + "---:|" * 11,
    ]
    for k in keys:
        spec = next(r["spec"] for r in rows if case_key(r["spec"]) == k)
        cells = {m: by.get((k, m)) for m in (*FIT_COLUMNS, "numpy")}
        times, errs = [], []
        for m in FIT_COLUMNS:
            r = cells[m]
            if r is None:
                times.append("")
                errs.append("")
            elif _ok(r):
                runs = len(r["times"])
                times.append(_fmt_time(r["median"]) + ("" if runs > 1 else "¹"))
                errs.append(_fmt_err(r.get("error")))
            else:
                times.append(_status_cell(r))
                errs.append("")
        ref = cells["numpy"]
        ref_cell = _fmt_time(ref["median"]) if _ok(ref) else ""
        ours = cells["skbutterfly"]
        peers = [cells[m] for m in PEERS if _ok(cells[m])]
        ratio = ""
        if _ok(ours) and peers:
            fast = min(peers, key=lambda r: r["median"])
            ratio = f"{fast['median'] / ours['median']:.1f}x ({_short(fast['method'])})"
        params = ""
        if _ok(ours):
            peer_params = sorted({r["n_params"] for r in peers if r.get("n_params")})
            params = f"{ours['n_params']}" + (
                " / " + ", ".join(str(p) for p in peer_params) if peer_params else ""
            )
        dtype = {"float64": "f64", "float32": "f32"}[spec["precision"]]
        if spec["case"] == "dft":
            dtype = {"f64": "c128", "f32": "c64"}[dtype]
        name = spec["case"]
        if name == "sweep":
            name += f" depth {spec['depth']} rank {spec['rank']}"
        lines.append(
            f"| {name} | {dtype} | {_shape(spec)} | "
            + " | ".join(times)
            + f" | {ref_cell} | {ratio} | "
            + " | ".join(errs)
            + f" | {params} |"
        )
    return "\n".join(lines)


def _short(method):
    return {
        "pyfaust-bbtree": "bbtree",
        "pyfaust-fdb": "fdb",
        "lazylinop-ksd": "lazylinop",
        "skbutterfly": "skbutterfly",
        "numpy": "dense",
        "scipy-fft": "scipy.fft",
    }[method]


def slope_table(records):
    lines = [
        f"| case | method | sizes used (n = {SLOPE_RANGE[0]} .. {SLOPE_RANGE[1]}) "
        "| log-log slope |",
        "|---|---|---|---:|",
    ]
    for case in SQUARE_DYADIC:
        for method in FIT_COLUMNS:
            pts = _slope_points(records, method, case)
            s = slope(pts)
            if s is None:
                continue
            lines.append(
                f"| {case} | {method} | {', '.join(str(n) for n, _ in pts)} | {s:.2f} |"
            )
    return "\n".join(lines)


def _apply_rows(records):
    """``{(case, n): {method: record}}`` of every record with apply timings."""
    out = {}
    for r in records:
        if "apply_batches" not in r:
            continue
        out.setdefault((r["spec"]["case"], r["spec"]["n"]), {})[r["method"]] = r
    return out


def apply_table(records):
    lines = [
        "| case | n | vectors | skbutterfly ms | dense numpy ms | pyfaust ms "
        "| lazylinop ms | scipy.fft ms | dense / skbutterfly | skbutterfly / scipy.fft "
        "| skbutterfly / faster peer |",
        "|---|---|---|" + "---:|" * 8,
    ]
    for (case, n), by in sorted(_apply_rows(records).items()):
        batches = next(iter(by.values()))["apply_batches"]
        for k in batches:
            t = {}
            cells = []
            for m in APPLY_COLUMNS:
                r = by.get(m)
                if r is None:
                    cells.append("")
                elif _ok(r) and str(k) in r.get("apply", {}):
                    t[m] = r["apply"][str(k)]["median"]
                    cells.append(_fmt_ms(t[m]))
                else:
                    cells.append(_status_cell(r))
            ours = t.get("skbutterfly")
            vs_dense = f"{t['numpy'] / ours:.1f}x" if ours and "numpy" in t else ""
            vs_fft = (
                f"{ours / t['scipy-fft']:.1f}x" if ours and "scipy-fft" in t else ""
            )
            peer = [t[m] for m in ("pyfaust-bbtree", "lazylinop-ksd") if m in t]
            vs_peer = f"{ours / min(peer):.2f}x" if ours and peer else ""
            lines.append(
                f"| {case} | {n} | {k} | "
                + " | ".join(cells)
                + f" | {vs_dense} | {vs_fft} | {vs_peer} |"
            )
    return "\n".join(lines)


def memory_table(records):
    lines = [
        "| case | n | method | input MiB | RSS before the fit MiB | peak RSS during "
        "the fit MiB | fit s | (peak - before) / input |",
        "|---|---|---|" + "---:|" * 5,
    ]
    for r in records:
        if r["kind"] != "memory":
            continue
        spec = r["spec"]
        if _ok(r) and "multiple" in r:
            lines.append(
                f"| {spec['case']} | {_shape(spec)} | {r['method']} "
                f"| {r['input_bytes'] / 2**20:.0f} | {r['baseline_rss'] / 2**20:.0f} "
                f"| {r['peak_during_fit'] / 2**20:.0f} | {_fmt_time(r.get('time'))} "
                f"| {r['multiple']:.2f} |"
            )
        else:
            lines.append(
                f"| {spec['case']} | {_shape(spec)} | {r['method']} | | | | "
                f"| {_status_cell(r)} |"
            )
    return "\n".join(lines)


def failures(records):
    lines = []
    for r in records:
        if r["status"] in ("ok", "unsupported"):
            continue
        lines.append(
            f"- {r['kind']} {case_key(r['spec'])} {r['method']}: "
            f"{r['status']}: {r.get('error', '')}"
        )
    return "\n".join(lines) if lines else "None."


# ---------------------------------------------------------------- targets


def targets(records):
    """Rows ``(target, measured, met)``; ``met`` is True, False or None."""
    fit = {(case_key(r["spec"]), r["method"]): r for r in records if r["kind"] == "fit"}
    rows = []

    def get(case, n, method):
        return fit.get((f"{case}/float64/{n}", method))

    for case in ("dft", "hadamard", "gaussian"):
        for n in (2048, 4096):
            ours = get(case, n, "skbutterfly")
            peers = [get(case, n, m) for m in PEERS]
            peers = [p for p in peers if _ok(p)]
            name = (
                f"Fit {case}-{n}: >= {TARGET_SPEEDUP:g}x faster than the faster "
                "peer, error <= peers'"
            )
            if not _ok(ours) or not peers:
                rows.append((name, "not measured", None))
                continue
            fast = min(peers, key=lambda r: r["median"])
            speed = fast["median"] / ours["median"]
            best = min(p["error"] for p in peers)
            err_ok = ours["error"] <= 1.001 * best or max(ours["error"], best) < EXACT
            rows.append(
                (
                    name,
                    f"{speed:.2f}x ({_fmt_time(ours['median'])} s vs "
                    f"{_short(fast['method'])} {_fmt_time(fast['median'])} s); "
                    f"error {ours['error']:.4g} vs best peer {best:.4g}",
                    speed >= TARGET_SPEEDUP and err_ok,
                )
            )
    for case, label in (("dft", "DFT"), ("monarch", "Monarch")):
        r = get(case, 4096, "skbutterfly")
        rows.append(
            (
                f"Fit {label}-4096 < 0.5 s",
                f"{r['median']:.3f} s" if _ok(r) else "not measured",
                (r["median"] < 0.5) if _ok(r) else None,
            )
        )
    for case in SQUARE_DYADIC:
        pts = _slope_points(records, "skbutterfly", case)
        s = slope(pts)
        name = f"Fit {case}: log-log slope <= 2.2 for n = 1024 .. 16384"
        if s is None:
            rows.append((name, "not measured", None))
        else:
            note = (
                "" if pts[-1][0] >= SLOPE_RANGE[1] else f" (only up to n={pts[-1][0]})"
            )
            rows.append(
                (name, f"{s:.2f} over n = {pts[0][0]}..{pts[-1][0]}{note}", s <= 2.2)
            )
    apply = _apply_rows(records).get(("dft", 4096), {})

    def at64(m):
        r = apply.get(m)
        if _ok(r) and "64" in r.get("apply", {}):
            return r["apply"]["64"]["median"]
        return None

    ours, dense, fft = at64("skbutterfly"), at64("numpy"), at64("scipy-fft")
    rows.append(
        (
            "Apply DFT-4096 to 64 vectors: >= 20x faster than dense",
            f"{dense / ours:.1f}x ({_fmt_ms(ours)} ms vs {_fmt_ms(dense)} ms)"
            if ours and dense
            else "not measured",
            (dense / ours >= 20) if ours and dense else None,
        )
    )
    rows.append(
        (
            "Apply DFT-4096 to 64 vectors: within 3x of scipy.fft",
            f"{ours / fft:.2f}x ({_fmt_ms(ours)} ms vs {_fmt_ms(fft)} ms)"
            if ours and fft
            else "not measured",
            (ours / fft <= 3) if ours and fft else None,
        )
    )
    for r in records:
        if r["kind"] == "memory" and r["method"] == "skbutterfly":
            name = (
                f"Peak fit memory < 3x input ({r['spec']['case']} {_shape(r['spec'])})"
            )
            if _ok(r) and "multiple" in r:
                rows.append((name, f"{r['multiple']:.2f}x", r["multiple"] < 3))
            else:
                rows.append((name, r["status"], None))
    return rows


def targets_table(records):
    lines = ["| target | measured | met |", "|---|---|---|"]
    for name, measured, met in targets(records):
        flag = {True: "met", False: "NOT MET", None: "not measured"}[met]
        lines.append(f"| {name} | {measured} | {flag} |")
    return "\n".join(lines)


# ---------------------------------------------------------------- plots


COLORS = {
    "skbutterfly": "C0",
    "pyfaust-bbtree": "C1",
    "pyfaust-fdb": "C2",
    "lazylinop-ksd": "C3",
    "numpy": "0.5",
    "scipy-fft": "C4",
}


def plot_times(records, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 2, figsize=(11, 8.5), sharex=True)
    for ax, case in zip(axes.flat, SQUARE_DYADIC, strict=True):
        for method in (*FIT_COLUMNS, "numpy"):
            pts = sorted(
                (r["spec"]["n"], r["median"])
                for r in records
                if r["kind"] == "fit"
                and _ok(r)
                and r["method"] == method
                and r["spec"]["case"] == case
                and r["spec"]["precision"] == "float64"
            )
            if not pts:
                continue
            s = slope(_slope_points(records, method, case))
            label = METHODS[method].label if method != "numpy" else "one pass (copy)"
            if s is not None and method != "numpy":
                label += f" (slope {s:.2f})"
            ax.loglog(
                *zip(*pts, strict=True),
                "o-" if method != "numpy" else "--",
                color=COLORS[method],
                label=label,
                base=2,
            )
        ax.set_title(CASES[case], fontsize=9)
        ax.set_xlabel("n")
        ax.set_ylabel("fit time (s)")
        ax.grid(True, which="both", alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8)
    fig.suptitle("Fit time vs n (square dyadic, rank 1, float64; medians)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_errors(records, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cases = [c for c in CASES if c not in ("dft", "hadamard")]
    cases = ["sweep"] + [c for c in cases if c != "sweep"]
    fig, axes = plt.subplots(2, 3, figsize=(14, 8.5))
    axes = axes.flat
    markers = {
        "skbutterfly": "o",
        "pyfaust-bbtree": "s",
        "pyfaust-fdb": "^",
        "lazylinop-ksd": "x",
    }
    for ax, case in zip(axes, cases, strict=True):
        for method in FIT_COLUMNS:
            pts = [
                (r["n_params"], r["error"])
                for r in records
                if r["kind"] == "fit"
                and _ok(r)
                and r["method"] == method
                and r["spec"]["case"] == case
                and r["spec"]["precision"] == "float64"
                and r.get("n_params")
            ]
            if pts and case == "sweep":
                pts.sort()
                ax.plot(
                    *zip(*pts, strict=True),
                    marker=markers[method],
                    color=COLORS[method],
                    label=METHODS[method].label,
                    mfc="none",
                    lw=1,
                    ls=":",
                )
            elif pts:
                ax.scatter(
                    *zip(*pts, strict=True),
                    marker=markers[method],
                    color=COLORS[method],
                    label=METHODS[method].label,
                    s=40 if method == "skbutterfly" else 25,
                    facecolors="none" if method == "skbutterfly" else None,
                )
        ax.set_xscale("log")
        if case == "sweep":
            for r in records:
                if (
                    r["kind"] == "fit"
                    and _ok(r)
                    and r["method"] == "skbutterfly"
                    and r["spec"]["case"] == "sweep"
                ):
                    ax.annotate(
                        f"{r['spec']['depth']},{r['spec']['rank']}",
                        (r["n_params"], r["error"]),
                        fontsize=6,
                        xytext=(3, 3),
                        textcoords="offset points",
                    )
        ax.set_title(
            "sweep (labels: depth,rank)" if case == "sweep" else case, fontsize=10
        )
        ax.set_xlabel("parameters")
        ax.set_ylabel("relative error")
        ax.grid(True, alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7)
    fig.suptitle("Relative Frobenius error vs number of parameters (every size)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_apply(records, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = sorted(_apply_rows(records).items())
    if not rows:
        return False
    fig, axes = plt.subplots(1, len(rows), figsize=(4.5 * len(rows), 4), squeeze=False)
    for ax, ((case, n), by) in zip(axes[0], rows, strict=True):
        for method in APPLY_COLUMNS:
            r = by.get(method)
            if not _ok(r) or "apply" not in r:
                continue
            pts = sorted((int(k), v["median"] * 1e3) for k, v in r["apply"].items())
            ax.loglog(
                *zip(*pts, strict=True),
                "o-",
                color=COLORS[method],
                label=METHODS[method].label,
            )
        ax.set_title(f"{case} n={n}")
        ax.set_xlabel("vectors")
        ax.set_ylabel("apply time (ms)")
        ax.grid(True, which="both", alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7)
    fig.suptitle("Apply time vs batch size (medians)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


# ---------------------------------------------------------------- outputs


def _load_line(records):
    loads = sorted(r["loadavg"] for r in records if r.get("loadavg") is not None)
    if not loads:
        return ""
    return (
        f"1-minute load average sampled before each fit: median "
        f"{loads[len(loads) // 2]:.2f}, max {loads[-1]:.2f} (2 cores; above 2 the "
        "fits competed with other processes for the CPU)."
    )


def render(records, meta, plots):
    v = meta["versions"]
    args = meta["args"]
    settings = []
    if args.get("blas_threads"):
        settings.append(
            f"BLAS/OpenMP threads set to {args['blas_threads']} in every worker"
        )
    if args.get("max_load"):
        settings.append(
            f"each fit of n >= 1024 waited (at most {args['max_wait']:g} s) for the "
            f"1-minute load average to fall to {args['max_load']:g}"
        )
    parts = [
        "# skbutterfly benchmarks",
        "",
        *(
            ["**Interrupted run: partial results.**", ""]
            if meta.get("interrupted")
            else []
        ),
        f"Command: `{meta['command']}` (from the project root; "
        f"{meta['elapsed_s'] / 60:.1f} min, started {meta['started']}).",
        "",
        f"Machine: {meta['cpu']}, {meta['cores']} cores, {meta['memory_gib']} GiB; "
        f"{meta['os']}; Python {meta['python']}; "
        f"BLAS: {'; '.join(meta['blas']) or '?'}. "
        f"Load average at start {' '.join(meta['load_start'])}, at end "
        f"{' '.join(meta.get('load_end') or [])} (the machine is shared: compare "
        "ratios within one run, not wall times across runs).",
        "",
        _load_line(records)
        + (" Settings: " + "; ".join(settings) + "." if settings else ""),
        "",
        "Versions: "
        + ", ".join(f"{k} {val}" for k, val in v.items())
        + f"; skbutterfly revision {meta.get('revision', 'unknown')}.",
        "",
        "How it is measured: every method runs in its own long-lived worker process "
        "(imports and a tiny warm-up fit are not timed; a crashing peer is recorded, "
        "not fatal). Fit times are medians of up to "
        f"{meta['args']['repeats']} runs, stopping once the runs add up to "
        f"{meta['args']['budget']:g} s (¹ = a single run); a fit whose time, "
        "extrapolated from the smaller sizes of the same method and case, exceeds "
        f"{meta['args']['cap']:g} s ({meta['args']['cap_ours']:g} s for skbutterfly) "
        "is skipped. Errors are the relative Frobenius "
        "error ||A - B||_F / ||A||_F of the fitted operator to the input (for "
        "lazylinop on the DFT: to the bit-reversed input it factorizes). "
        "'faster peer / skbutterfly' is the speedup of skbutterfly over the fastest "
        "peer of the row. 'one pass (copy)' is `A.copy()`, the floor of any fit. "
        "Apply times are medians per call (auto-ranged loops); lazylinop's DFT apply "
        "includes the bit-reversal gather of X. Memory: each fit in a fresh process "
        "that first imports the library and loads the input; the peak RSS is reset "
        "(`/proc/self/clear_refs`) just before the fit, and the peak during the fit "
        "(VmHWM) minus the RSS just before it is divided by the input's size (where "
        "the reset is not possible: ru_maxrss minus that of a process that only "
        "imports and loads the input).",
        "",
        "## Targets (issue 4)",
        "",
        targets_table(records),
        "",
        "A fit target's error is met when skbutterfly's error is <= 1.001 x the best "
        f"peer's, or both are below {EXACT:g}.",
        "",
        "## Fit: square dyadic, rank 1, float64 / complex128",
        "",
        fit_table(
            records,
            lambda r: (
                r["spec"]["case"] in SQUARE_DYADIC
                and r["spec"]["precision"] == "float64"
            ),
        ),
        "",
        "## Fit: float32 / complex64",
        "",
        fit_table(records, lambda r: r["spec"]["precision"] == "float32"),
        "",
        "## Fit: Monarch (depth 2), rank-4 chains (depth 4), rectangular 768 x 3072 "
        "(depth 2, rank 4)",
        "",
        "lazylinop gets skbutterfly's chain for rank 4 and rectangular shapes "
        "(`Chain.monarch` for Monarch); pyfaust fdb gets `n_factors` and `rank` and "
        "chooses its own chain (compare the parameter counts).",
        "",
        fit_table(records, lambda r: r["spec"]["case"] in ("monarch", "rank4", "rect")),
        "",
        "## Error vs parameters: (depth, rank) sweep on the rank-4 input",
        "",
        "The input is the rank-4 case's matrix (a random depth-4 rank-4 product plus "
        "10 % noise); every architecture of the grid is fitted by each method "
        "(lazylinop with skbutterfly's chain; fdb with its own chain for "
        "`n_factors=depth, rank=rank`).",
        "",
        fit_table(records, lambda r: r["spec"]["case"] == "sweep"),
        "",
        "## Fit time growth (log-log slope of the medians)",
        "",
        slope_table(records),
        "",
        "## Apply (operator times a batch of vectors)",
        "",
        apply_table(records),
        "",
        "## Peak memory of a fit",
        "",
        memory_table(records),
        "",
        "## Failures and skipped runs",
        "",
        failures(records),
        "",
        "Cells: `skip` = skipped (see above), `n/a` = the method does not support the "
        "case, `CRASH` / `ERROR` / `TIMEOUT` = the peer failed (details above).",
    ]
    if plots:
        parts += ["", "## Plots", ""] + [f"![{p}]({p})" for p in plots]
    return "\n".join(parts) + "\n"


def write_outputs(records, meta, out, plots=True):
    written = []
    if plots:
        try:
            has_fits = any(r["kind"] == "fit" and _ok(r) for r in records)
            if has_fits:
                plot_times(records, out / "fit_time_vs_n.png")
                written.append("fit_time_vs_n.png")
                plot_errors(records, out / "error_vs_params.png")
                written.append("error_vs_params.png")
            if plot_apply(records, out / "apply_time.png"):
                written.append("apply_time.png")
        except ImportError as exc:
            print(f"no plots: {exc}")
    text = render(records, meta, written)
    (out / "results.md").write_text(text)
    with open(out / "results.json", "w") as f:
        json.dump({"meta": meta, "records": records}, f, indent=1, default=str)
    lines = ["Targets (issue 4)", "", targets_table(records)]
    return "\n".join(lines)
