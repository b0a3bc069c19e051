"""``mridip bench``: operator, fitting-step and set-up speed, printed as a table.

Default (about a minute on 2 CPU cores):

- NUFFT backends (every one of :func:`mridip.operators.available_backends`) on the
  reference cine case, 128 x 128 images, 20 frames, 8 coils, 13 golden-angle spokes x 256
  samples per frame: operator set-up (Toeplitz kernels), forward, adjoint, forward +
  adjoint, against the Toeplitz normal (:func:`mridip.bench_radial.backend_rows`);
  the Cartesian normal at R = 8.
- Fitting: value and gradient of the data term through the Toeplitz normal and through
  the explicit NUFFT (reference case), and one TDDIP step as the fitting loop makes it
  (one frame per step, Toeplitz data term, Adam) at the demo size (64 x 64 x 12, 4 coils,
  32 channels) and at the protocol size (128 x 128 x 20, 8 coils, 64 channels).
- Real-size radial set-up: one 192 x 192 frame, 16 coils, 69 spokes x 384 samples,
  ``estimate_maps`` + 30 CG-SENSE iterations with the default backend, against an
  independent sigpy pipeline (:func:`mridip.bench_radial.radial_setup_case`).

``full``: also the 32-coil backend rows, the set-up case with every backend, the TDDIP
step on all 20 frames with the default 128-channel generator (normal and forward data
term) and the graph image prior's three stage steps. ``contended``: a TDDIP step and a
Toeplitz normal alone and beside ``cores - 1`` busy-loop processes, with and without the
thread policy (:mod:`mridip.threads`), each in a fresh process (:func:`contended_rows`).
``tiny``: every case at smoke-test sizes (seconds in all; for the tests; numbers mean nothing).

Timing: each call runs ``warmup`` times untimed, then ``repeats`` times; the median wall
time is reported (``torch.cuda.synchronize`` around every timed call on CUDA) with the
median process CPU time of the same runs. Memory: on CUDA the peak
``torch.cuda.max_memory_allocated`` of each case (reset before it); on CPU the process's
peak resident set size (``resource.getrusage().ru_maxrss``), which only grows.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

import torch

from mridip.device import resolve_device

#: Busy-loop competitors of ``--contended`` end by themselves after this many seconds
#: (and when their parent process is gone), whatever happens to the benchmark.
COMPETITOR_LIMIT_S = 120.0
#: Target of ``--contended``: a step beside a busy process at most this many times slower.
CONTENDED_TARGET = 2.5


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_call(fn: Callable[[], object], repeats: int = 5, warmup: int = 1, device: str | torch.device = "cpu") -> float:
    """Median wall time in seconds of ``fn()`` over ``repeats`` runs after ``warmup`` runs.

    On CUDA the device is synchronised before and after every timed run, so the time
    covers the kernels, not just their launch. The median CPU time of the process over
    the same runs is left in ``time_call.last_cpu_seconds`` (on a shared CPU it is the
    steadier number: it does not count time other processes held the cores). Before every
    run :func:`mridip.threads.adapt_threads` lets the thread policy follow the free cores,
    as in a fitting loop.
    """
    from mridip.threads import adapt_threads

    dev = torch.device(device)
    for _ in range(max(0, int(warmup))):
        adapt_threads()
        fn()
    _sync(dev)
    times = []
    cpu = []
    for _ in range(max(1, int(repeats))):
        adapt_threads()
        _sync(dev)
        t0, c0 = time.perf_counter(), time.process_time()
        fn()
        _sync(dev)
        times.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    time_call.last_cpu_seconds = float(statistics.median(cpu))
    return float(statistics.median(times))


def device_name(device: torch.device) -> str:
    """Human-readable name of the device (GPU model, or CPU model and core count)."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return f"{cpu} ({os.cpu_count()} cores)"


def _peak_memory_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: KiB


def _row(name: str, case: str, device: torch.device, seconds, **kw) -> dict:
    return {"name": name, "case": case, "device": device.type, "seconds": seconds,
            "threads": torch.get_num_threads(), **kw}


# ------------------------------------------------------------------ operators
def _backend_case(device: torch.device, repeats: int, size: int = 128, frames: int = 20, coils: int = 8,
                  spokes: int = 13, samples: int = 256) -> list[dict]:
    """NUFFT backend rows (:func:`mridip.bench_radial.backend_rows`) plus one
    ``radial_fa_over_normal`` row per backend: (forward + adjoint) / Toeplitz normal."""
    try:
        from mridip.bench_radial import backend_rows
    except ImportError as exc:  # pragma: no cover - the module is part of the package
        return [_row("radial_backends", f"{size}x{size}x{frames} C{coils}", device, None,
                     note=f"backend comparison needs mridip.bench_radial ({exc})")]
    rows = backend_rows(device, size=size, frames=frames, coils=coils, spokes=spokes, samples=samples,
                        repeats=repeats)
    mem = _peak_memory_mb(device)
    out = []
    by: dict[tuple[str, str], dict] = {}
    for r in rows:
        if r["name"] != "radial_backend_agreement":
            r["peak_memory_mb"] = mem
            r["repeats"] = 1 if r["name"] == "radial_setup" else repeats
        by[(r["backend"], r["name"])] = r
        out.append(r)
    for b in dict.fromkeys(r["backend"] for r in rows):
        fa, nm = by.get((b, "radial_forward_adjoint")), by.get((b, "radial_normal"))
        if fa and nm:
            out.append(_row("radial_fa_over_normal", fa["case"], device, None, backend=b,
                            ratio=fa["seconds"] / max(nm["seconds"], 1e-12),
                            cpu_ratio=fa["cpu_seconds"] / max(nm["cpu_seconds"], 1e-12)))
    return out


def _cartesian_case(device: torch.device, repeats: int, size: int = 128, frames: int = 20, coils: int = 8,
                    acceleration: float = 8.0) -> list[dict]:
    """The fused masked-FFT normal of :class:`CartesianSense` (variable-density lines)."""
    from mridip.operators import CartesianSense
    from mridip.trajectories import variable_density_lines

    g = torch.Generator().manual_seed(3)
    maps = torch.randn(coils, size, size, dtype=torch.complex64, generator=g).to(device)
    x = torch.randn(frames, size, size, dtype=torch.complex64, generator=g).to(device)
    C = CartesianSense(maps, variable_density_lines(frames, size, size, acceleration).to(device))
    with torch.no_grad():
        sec = time_call(lambda: C.normal(x), repeats=repeats, warmup=1, device=device)
    return [_row("cartesian_normal", f"{size}x{size}x{frames} C{coils}", device, sec,
                 cpu_seconds=time_call.last_cpu_seconds, repeats=repeats, peak_memory_mb=_peak_memory_mb(device))]


# ------------------------------------------------------------------ fitting
def _fit_case(device: torch.device, repeats: int, size: int = 128, frames: int = 20, coils: int = 8,
              spokes: int = 13, samples: int = 256, channels: int = 128, step: bool = True) -> list[dict]:
    """Cost of fitting on all frames: the data term and (``step``) one full TDDIP step.

    ``dc_grad_*``: value and gradient (w.r.t. the image series) of the data-consistency
    loss of all frames, through ``A.normal`` (``normal``) or ``A`` and its adjoint
    (``forward``). ``tddip_step_*``: one Adam step of a TDDIP generator with ``channels``
    channels on all frames with that loss; ``dc_forward_over_normal``: the ratios.
    """
    from mridip.models import TDDIP
    from mridip.operators import RadialSense
    from mridip.recon.fit import KSpaceLoss
    from mridip.trajectories import radial_trajectory

    g = torch.Generator().manual_seed(1)
    case = f"{size}x{size}x{frames} C{coils}"
    maps = torch.randn(coils, size, size, dtype=torch.complex64, generator=g).to(device)
    A = RadialSense(maps, radial_trajectory(frames, spokes, samples).to(device))
    x0 = torch.randn(frames, size, size, dtype=torch.complex64, generator=g).to(device)
    with torch.no_grad():
        y = A(x0)
    frames_idx = torch.arange(frames, device=device)
    records = []
    by = {}
    for path in ("normal", "forward"):
        loss = KSpaceLoss(A, y, path=path)
        x = (0.5 * x0).requires_grad_(True)

        def dc_step():
            v = loss(x, frames_idx)
            (gx,) = torch.autograd.grad(v, x)
            return gx

        sec = time_call(dc_step, repeats=repeats, warmup=1, device=device)
        by[f"dc_grad_{path}"] = sec
        records.append(_row(f"dc_grad_{path}", case, device, sec, cpu_seconds=time_call.last_cpu_seconds,
                            repeats=repeats))
    ratio = {"ratio": by["dc_grad_forward"] / by["dc_grad_normal"]}
    if step:
        torch.manual_seed(0)
        model = TDDIP(frames, (size, size), channels=channels).to(device)
        opt = torch.optim.Adam(model.parameters(), lr=1e-4)
        for path in ("normal", "forward"):
            loss = KSpaceLoss(A, y, path=path)

            def one_step():
                opt.zero_grad(set_to_none=True)
                loss(model(frames_idx), frames_idx).backward()
                opt.step()

            n = max(1, min(repeats, 3))
            sec = time_call(one_step, repeats=n, warmup=1, device=device)
            by[f"tddip_step_{path}"] = sec
            records.append(_row(f"tddip_step_{path}", f"{case} ch{channels}", device, sec,
                                cpu_seconds=time_call.last_cpu_seconds, repeats=n))
        ratio["step_ratio"] = by["tddip_step_forward"] / by["tddip_step_normal"]
    records.append(_row("dc_forward_over_normal", case, device, None, **ratio))
    return records


def _tddip_frame_step(device: torch.device, size: int, frames: int, coils: int, channels: int,
                      spokes: int = 13, samples: int | None = None) -> Callable[[], None]:
    """A closure making one fitting-loop step: one frame (cycling), Toeplitz data term, Adam."""
    from mridip.models import TDDIP
    from mridip.operators import RadialSense
    from mridip.recon.fit import KSpaceLoss
    from mridip.trajectories import radial_trajectory

    g = torch.Generator().manual_seed(4)
    maps = torch.randn(coils, size, size, dtype=torch.complex64, generator=g).to(device)
    A = RadialSense(maps, radial_trajectory(frames, spokes, samples or 2 * size).to(device))
    x0 = torch.randn(frames, size, size, dtype=torch.complex64, generator=g).to(device)
    with torch.no_grad():
        y = A(x0)
    loss = KSpaceLoss(A, y, path="normal")
    torch.manual_seed(0)
    model = TDDIP(frames, (size, size), channels=channels).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    idx = [torch.tensor([t], device=device) for t in range(frames)]
    count = [0]

    def step() -> None:
        b = idx[count[0] % frames]
        count[0] += 1
        opt.zero_grad(set_to_none=True)
        loss(model(b), b).backward()
        opt.step()

    return step


def _frame_step_case(device: torch.device, repeats: int, size: int, frames: int, coils: int, channels: int,
                     label: str) -> list[dict]:
    """One TDDIP step as the fitting loop makes it (median over >= 10 steps after 3 untimed)."""
    step = _tddip_frame_step(device, size, frames, coils, channels)
    n = max(repeats, 10)
    sec = time_call(step, repeats=n, warmup=3, device=device)
    return [_row("tddip_frame_step", f"{size}x{size}x{frames} C{coils} ch{channels}", device, sec,
                 cpu_seconds=time_call.last_cpu_seconds, repeats=n, label=label,
                 peak_memory_mb=_peak_memory_mb(device))]


def _gip_case(device: torch.device, repeats: int, size: int = 128, frames: int = 20, coils: int = 8,
              acceleration: int = 8) -> list[dict]:
    """Cost of one Adam step of each stage of the graph image prior (reference widths,
    ``CH = 24``, ``k = 7``) on all frames, Cartesian data term through ``A.normal``.

    ``gip_step_stage1``: per-frame CNNs and heads; ``gip_step_stage2``: graph network with
    the per-frame features cached; ``gip_step_stage3``: everything jointly.
    """
    from mridip.models.gip import GraphImagePrior
    from mridip.operators import CartesianSense
    from mridip.recon.fit import KSpaceLoss

    g = torch.Generator().manual_seed(2)
    case = f"{size}x{size}x{frames} C{coils}"
    maps = torch.randn(coils, size, size, dtype=torch.complex64, generator=g).to(device)
    mask = (torch.rand(frames, size, 1, generator=g) < 1.0 / acceleration).expand(-1, -1, size)
    A = CartesianSense(maps, mask.to(device))
    x0 = torch.randn(frames, size, size, dtype=torch.complex64, generator=g).to(device)
    loss = KSpaceLoss(A, A(x0).detach(), path="normal")
    idx = torch.arange(frames, device=device)
    torch.manual_seed(0)
    model = GraphImagePrior(frames, (size, size)).to(device)
    records = []
    stages = (("gip_step_stage1", "heads", model.generator_parameters(), False),
              ("gip_step_stage2", "graph", model.graph_parameters(), True),
              ("gip_step_stage3", "graph", model.joint_parameters(), False))
    for name, output, params, frozen in stages:
        model.set_output(output)
        opt = torch.optim.Adam(params, lr=1e-5)

        def step():
            opt.zero_grad(set_to_none=True)
            loss(model(idx), idx).backward()
            opt.step()

        n = max(1, min(repeats, 3))
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        with model.generators_frozen() if frozen else contextlib.nullcontext():
            sec = time_call(step, repeats=n, warmup=1, device=device)
        records.append({"name": name, "case": case, "device": device.type, "seconds": sec,
                        "cpu_seconds": time_call.last_cpu_seconds, "repeats": n,
                        "peak_memory_mb": _peak_memory_mb(device)})
    return records


# ------------------------------------------------------------------ real-size set-up
def _setup_case(device: torch.device, full: bool, tiny: bool) -> list[dict]:
    """:func:`mridip.bench_radial.radial_setup_case` (CPU): the default backend and sigpy;
    with ``full`` every backend."""
    try:
        from mridip.bench_radial import radial_setup_case
        from mridip.operators import default_backend
    except ImportError as exc:  # pragma: no cover
        return [{"name": "radial_maps_cg_sense", "case": "192x192 C16 69x384", "device": "cpu",
                 "note": f"radial set-up case needs mridip.bench_radial.radial_setup_case ({exc})"}]
    kw = dict(size=32, coils=2, spokes=8, samples=64, iterations=2, warmup=False) if tiny else {}
    backends = None if full else [default_backend("cpu")]
    try:
        import sigpy  # noqa: F401
        with_sigpy = True
    except ImportError:
        with_sigpy = False
    rows = radial_setup_case(backends=backends, sigpy=with_sigpy, **kw)
    if not with_sigpy:
        rows.append({"name": "radial_maps_cg_sense", "backend": "sigpy", "case": rows[0]["case"] if rows else "",
                     "device": "cpu", "note": "the sigpy comparison needs sigpy: pip install sigpy"})
    return rows


# ------------------------------------------------------------------ shared cores
_COMPETITOR = (
    "import os, time\n"
    "end, parent = time.monotonic() + {limit}, os.getppid()\n"
    "while time.monotonic() < end and os.getppid() == parent:\n"
    "    pass\n"
)


@contextlib.contextmanager
def competitors(n: int, limit_s: float = COMPETITOR_LIMIT_S):
    """``n`` busy-loop Python processes (no affinity), killed on exit.

    Each also ends by itself after ``limit_s`` seconds or when this process is gone.
    Yields the list of ``subprocess.Popen`` objects.
    """
    procs = [subprocess.Popen([sys.executable, "-c", _COMPETITOR.format(limit=float(limit_s))],
                              stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
             for _ in range(max(0, int(n)))]
    try:
        time.sleep(0.2)  # let them reach their loops
        yield procs
    finally:
        for p in procs:
            p.kill()
        for p in procs:
            p.wait()


def _windowed(fn: Callable[[], object], warm_s: float, time_s: float, min_runs: int = 3) -> dict:
    """Run ``fn`` for ``warm_s`` s untimed, then time it for ``time_s`` s (>= ``min_runs`` runs).

    Calls :func:`mridip.threads.adapt_threads` before every run, as a solver loop does.
    Returns median and mean seconds per run, the run count, the thread count at the end and
    ``others_cores``: the CPU other processes used on the allowed cores during the timed
    window (``/proc/stat`` less this process), in cores.
    """
    from mridip.threads import _busy_ticks, _self_ticks, adapt_threads, allowed_cpus

    cpus = allowed_cpus()

    end = time.perf_counter() + warm_s
    while True:
        adapt_threads()
        fn()
        if time.perf_counter() >= end:
            break
    times = []
    b0, o0 = _busy_ticks(cpus), _self_ticks()
    t_start = time.perf_counter()
    end = t_start + time_s
    while time.perf_counter() < end or len(times) < min_runs:
        adapt_threads()
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    wall = time.perf_counter() - t_start
    b1, o1 = _busy_ticks(cpus), _self_ticks()
    others = None
    if None not in (b0, b1, o0, o1):
        others = max(0.0, ((b1 - b0) - (o1 - o0)) / (os.sysconf("SC_CLK_TCK") * wall))
    return {"median": float(statistics.median(times)), "mean": wall / len(times),
            "runs": len(times), "threads": torch.get_num_threads(), "others_cores": others}


def _contended_worker(spec: dict) -> dict:
    """Inside a fresh process: time the TDDIP step and the Toeplitz normal alone, then beside
    ``spec["competitors"]`` busy loops; returns the rows and the process's thread policy."""
    from mridip.operators import RadialSense
    from mridip.threads import thread_policy
    from mridip.trajectories import radial_trajectory

    dev = torch.device("cpu")
    s = spec["step"]
    step = _tddip_frame_step(dev, s["size"], s["frames"], s["coils"], s["channels"])
    n = spec["normal"]
    g = torch.Generator().manual_seed(5)
    maps = torch.randn(n["coils"], n["size"], n["size"], dtype=torch.complex64, generator=g)
    A = RadialSense(maps, radial_trajectory(n["frames"], 13, 2 * n["size"]))
    x = torch.randn(n["frames"], n["size"], n["size"], dtype=torch.complex64, generator=g)

    def normal():
        with torch.no_grad():
            A.normal(x)

    ops = {"tddip_frame_step": (step, f"{s['size']}x{s['size']}x{s['frames']} C{s['coils']} ch{s['channels']}"),
           "radial_normal": (normal, f"{n['size']}x{n['size']}x{n['frames']} C{n['coils']}")}
    out = {name: {"case": case} for name, (_, case) in ops.items()}
    for phase in ("alone", "contended"):
        with competitors(spec["competitors"] if phase == "contended" else 0, spec["limit_s"]):
            for name, (fn, _) in ops.items():
                out[name][phase] = _windowed(fn, spec["warm_s"], spec["time_s"])
    return {"ops": out, "policy": thread_policy()}


def contended_rows(tiny: bool = False, competitors_n: int | None = None, timeout_s: float = 300.0) -> list[dict]:
    """TDDIP step and Toeplitz normal alone vs beside busy processes, with and without the policy.

    For each of ``policy`` (the thread policy of :mod:`mridip.threads`, as ``import mridip``
    applies it; the user's OMP_* settings, if any, stay) and ``off`` (``MRIDIP_THREADS=off``:
    torch's defaults), a fresh Python process times, in windows of a few seconds after a
    warm-up, one demo-size TDDIP fitting step (64 x 64 x 12, 4 coils, 32 channels, one frame)
    and one Toeplitz normal of the reference case (128 x 128 x 20, 8 coils), first alone,
    then beside ``competitors_n`` (default ``cores - 1``, at least 1) busy-loop processes.

    Returns
    -------
    list of dict
        ``{"name": "contended", "op", "case", "policy", "alone_seconds", "contended_seconds",
        "ratio", "threads_alone", "threads_contended", "policy_summary", "within_target"}``
        (seconds: the median per run in the window; ``ratio`` = contended / alone,
        target <= :data:`CONTENDED_TARGET`).
    """
    ncpu = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    nc = max(1, ncpu - 1) if competitors_n is None else int(competitors_n)
    if tiny:
        spec = {"step": {"size": 16, "frames": 3, "coils": 2, "channels": 8},
                "normal": {"size": 16, "frames": 3, "coils": 2}, "warm_s": 0.1, "time_s": 0.2}
    else:
        spec = {"step": {"size": 64, "frames": 12, "coils": 4, "channels": 32},
                "normal": {"size": 128, "frames": 20, "coils": 8}, "warm_s": 1.5, "time_s": 2.5}
    spec.update(competitors=nc, limit_s=min(COMPETITOR_LIMIT_S, timeout_s))
    root = str(Path(__file__).resolve().parents[1])
    rows = []
    for policy in ("policy", "off"):
        env = dict(os.environ)
        if policy == "off":
            env["MRIDIP_THREADS"] = "off"
        elif env.get("MRIDIP_THREADS", "").strip().lower() in ("off", "0", "no", "false", "none"):
            env.pop("MRIDIP_THREADS")
        env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
        code = ("import json, sys\nfrom mridip.bench import _contended_worker\n"
                "print('MRIDIP-JSON ' + json.dumps(_contended_worker(json.loads(sys.argv[1]))))")
        try:
            res = subprocess.run([sys.executable, "-c", code, json.dumps(spec)], env=env, capture_output=True,
                                 text=True, timeout=timeout_s)
        except subprocess.TimeoutExpired:
            rows.append({"name": "contended", "policy": policy, "note": f"worker ran past {timeout_s:g} s"})
            continue
        line = next((ln for ln in res.stdout.splitlines() if ln.startswith("MRIDIP-JSON ")), None)
        if res.returncode != 0 or line is None:
            rows.append({"name": "contended", "policy": policy,
                         "note": f"worker failed (exit {res.returncode}): {res.stderr.strip()[-500:]}"})
            continue
        data = json.loads(line[len("MRIDIP-JSON "):])
        summary = _policy_summary(data["policy"])
        for op, r in data["ops"].items():
            a, c = r["alone"], r["contended"]
            ratio = c["median"] / max(a["median"], 1e-12)
            rows.append({"name": "contended", "op": op, "case": r["case"], "device": "cpu", "policy": policy,
                         "competitors": nc, "alone_seconds": a["median"], "contended_seconds": c["median"],
                         "alone_mean_seconds": a["mean"], "contended_mean_seconds": c["mean"],
                         "ratio": ratio, "within_target": ratio <= CONTENDED_TARGET,
                         "threads_alone": a["threads"], "threads_contended": c["threads"],
                         "others_alone": a["others_cores"], "others_contended": c["others_cores"],
                         "runs": [a["runs"], c["runs"]], "policy_summary": summary,
                         "thread_policy": data["policy"]})
    return rows


def _policy_summary(p: dict) -> str:
    if p.get("mode") in ("off", "not applied", None):
        return "off (torch defaults)"
    g = p.get("governor")
    s = f"{p['mode']}"
    if g:
        s += f", governor {g['changes']} changes"
    if p.get("wait_policy") not in (None, "libgomp default"):
        s += ", " + " ".join(f"{k}={v}" for k, v in p["wait_policy"].items())
    return s


# ------------------------------------------------------------------ driver
def run(device: str = "cpu", repeats: int = 3, full: bool = False, contended: bool = False,
        tiny: bool = False) -> list[dict]:
    """All benchmark records (see the module notes for what each option adds).

    Returns
    -------
    list of dict
        Records with ``name``, ``case``, ``device`` and, for timings, ``seconds`` (median
        wall), ``cpu_seconds``; ratio rows carry ``ratio``; set-up rows the fields of
        :func:`mridip.bench_radial.radial_setup_case`; contended rows those of
        :func:`contended_rows`.
    """
    dev = resolve_device(device)
    records: list[dict] = []
    if tiny:
        ref = dict(size=16, frames=3, coils=2, spokes=4, samples=32)
        records += _backend_case(dev, repeats, **ref)
        records += _cartesian_case(dev, repeats, 16, 3, 2, 2.0)
        records += _fit_case(dev, repeats, **ref, channels=8, step=full)
        records += _frame_step_case(dev, repeats, 16, 3, 2, 8, "demo")
        if full:
            records += _gip_case(dev, repeats, size=16, frames=3, coils=2, acceleration=2)
    else:
        records += _backend_case(dev, repeats)
        if full:
            records += _backend_case(dev, repeats, coils=32)
        records += _cartesian_case(dev, repeats)
        records += _fit_case(dev, repeats, step=full)
        records += _frame_step_case(dev, repeats, 64, 12, 4, 32, "demo")
        records += _frame_step_case(dev, repeats, 128, 20, 8, 64, "protocol")
        if full:
            records += _gip_case(dev, repeats)
    records += _setup_case(dev, full, tiny)
    if contended:
        records += contended_rows(tiny=tiny)
    return records


def _fmt(v, spec: str = ".4f") -> str:
    return "" if v is None else format(v, spec)


def format_table(records: list[dict]) -> str:
    """The plain-text table ``mridip bench`` prints."""
    lines = []
    ops = [r for r in records if r["name"] not in ("radial_maps_cg_sense", "contended")]
    hdr = f"{'case':<24} {'backend':<13} {'operation':<28} {'seconds':>9} {'CPU s':>8} {'thr':>3} {'peak MB':>8}"
    if ops:
        lines += [hdr, "-" * len(hdr)]
    for r in ops:
        b = r.get("backend", "")
        if "note" in r:
            lines.append(f"{r['case']:<24} {b:<13} {r['name']:<28} {r['note']}")
        elif r["name"] == "radial_fa_over_normal":
            lines.append(f"{r['case']:<24} {b:<13} {'(fwd+adj) / normal':<28} {r['ratio']:>8.1f}x "
                         f"{r['cpu_ratio']:>7.1f}x")
        elif r["name"] == "radial_backend_agreement":
            if b == r["reference_backend"]:
                continue  # itself
            lines.append(f"{r['case']:<24} {b:<13} {'forward vs ' + r['reference_backend']:<28} "
                         f"rel. diff {r['rel_diff_forward']:.1e}")
        elif r["name"] == "dc_forward_over_normal":
            extra = f"   (whole TDDIP step: {r['step_ratio']:.2f}x)" if "step_ratio" in r else ""
            lines.append(f"{r['case']:<24} {'':<13} {'data term fwd / normal':<28} {r['ratio']:>8.1f}x{extra}")
        else:
            name = r["name"] + (f" ({r['label']})" if r.get("label") else "")
            mem = r.get("peak_memory_mb")
            thr = r.get("threads")
            lines.append(f"{r['case']:<24} {b:<13} {name:<28} {_fmt(r['seconds']):>9} "
                         f"{_fmt(r.get('cpu_seconds')):>8} {'' if thr is None else thr:>3} {_fmt(mem, '.0f'):>8}")
    setup = [r for r in records if r["name"] == "radial_maps_cg_sense"]
    if setup:
        lines += ["", f"real-size radial set-up, {setup[0].get('case', '')}: coil maps (estimate_maps / sigpy "
                  "EspiritCalib) + CG-SENSE"]
        h = (f"{'backend':<13} {'DCF':<14} {'maps s':>7} {'op s':>6} {'CG s':>6} {'total s':>8} {'CPU s':>7} "
             f"{'map err':>8} {'NRMSE':>7}")
        lines += [h, "-" * len(h)]
        for r in setup:
            if "note" in r:
                lines.append(f"{r.get('backend', ''):<13} {r['note']}")
                continue
            lines.append(f"{r['backend']:<13} {r['dcf']:<14} {r['maps_seconds']:>7.2f} {r['operator_seconds']:>6.2f} "
                         f"{r['cg_seconds']:>6.2f} {r['total_seconds']:>8.2f} {r['cpu_seconds']:>7.2f} "
                         f"{r['map_error']:>8.1e} {r['nrmse']:>7.4f}")
    cont = [r for r in records if r["name"] == "contended"]
    if cont:
        n = next((r["competitors"] for r in cont if "competitors" in r), "?")
        lines += ["", f"shared cores: alone vs beside {n} busy process(es); median s per run "
                  f"(target: contended <= {CONTENDED_TARGET:g}x alone); threads and other processes' CPU "
                  "use (cores) alone / contended"]
        h = (f"{'operation':<18} {'case':<22} {'policy':<8} {'alone s':>8} {'contended s':>12} {'ratio':>7} "
             f"{'threads':>8} {'others':>9}  policy in effect")
        lines += [h, "-" * len(h)]
        for r in cont:
            if "note" in r:
                lines.append(f"{'':<18} {'':<22} {r['policy']:<8} {r['note']}")
                continue
            lines.append(f"{r['op']:<18} {r['case']:<22} {r['policy']:<8} {r['alone_seconds']:>8.4f} "
                         f"{r['contended_seconds']:>12.4f} {r['ratio']:>6.1f}x "
                         f"{str(r['threads_alone']) + '/' + str(r['threads_contended']):>8} "
                         f"{_fmt(r['others_alone'], '.1f') + '/' + _fmt(r['others_contended'], '.1f'):>9}  "
                         f"{r['policy_summary']}")
    return "\n".join(lines)


def main(device: str = "cpu", as_json: bool = False, repeats: int = 3, quick: bool = False, full: bool = False,
         contended: bool = False, tiny: bool = False) -> int:
    """Run the benchmark and print a table (or JSON with ``as_json``); returns 0.

    ``quick`` is the old name of the default (kept for scripts). JSON: ``{"device",
    "device_name", "thread_policy", "wall_seconds", "records": [...]}`` with the records
    of :func:`run`.
    """
    from mridip.threads import refresh_threads, thread_policy, thread_summary

    t0 = time.perf_counter()
    dev = resolve_device(device)
    refresh_threads()  # the load average read at import may be a minute old
    records = run(device, repeats=repeats, full=full and not quick, contended=contended, tiny=tiny)
    wall = time.perf_counter() - t0
    name = device_name(dev)
    if as_json:
        print(json.dumps({"device": dev.type, "device_name": name, "thread_policy": thread_policy(),
                          "wall_seconds": wall, "records": records}, indent=1, default=str))
        return 0
    try:
        load = " ".join(f"{v:.2f}" for v in os.getloadavg())
    except OSError:
        load = "?"
    print(f"mridip bench on {dev} ({name}); median of {repeats} after 1 warm-up; threads: {thread_summary()}; "
          f"load average {load}")
    print(format_table(records))
    kind = "CUDA max_memory_allocated per case" if dev.type == "cuda" else \
        "process peak RSS (ru_maxrss), cumulative over cases"
    print(f"peak memory: {kind}; bench wall time {wall:.1f} s")
    return 0
