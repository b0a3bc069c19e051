"""``mridip bench``: time the forward models on the reference cine case.

Reference case: 128 x 128 images, 20 frames, 8 coils, 13 golden-angle spokes x 256
samples per frame (and a 32-coil case unless ``quick``). Each call is run ``warmup``
times untimed, then ``repeats`` times; the median wall time is reported (with
``torch.cuda.synchronize`` around every timed call on CUDA). Memory: on CUDA the peak
``torch.cuda.max_memory_allocated`` of each case (reset before it); on CPU the process's
peak resident set size (``resource.getrusage().ru_maxrss``), which only grows, so it is
an upper bound for the cases run so far.
"""

from __future__ import annotations

import contextlib
import json
import platform
import statistics
import time
from typing import Callable

import torch

from mridip.device import resolve_device


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_call(fn: Callable[[], object], repeats: int = 5, warmup: int = 1, device: str | torch.device = "cpu") -> float:
    """Median wall time in seconds of ``fn()`` over ``repeats`` runs after ``warmup`` runs.

    On CUDA the device is synchronised before and after every timed run, so the time
    covers the kernels, not just their launch. The median CPU time of the process over
    the same runs is left in ``time_call.last_cpu_seconds`` (on a shared CPU it is the
    steadier number: it does not count time other processes held the cores).
    """
    dev = torch.device(device)
    for _ in range(max(0, int(warmup))):
        fn()
    _sync(dev)
    times = []
    cpu = []
    for _ in range(max(1, int(repeats))):
        _sync(dev)
        t0, c0 = time.perf_counter(), time.process_time()
        fn()
        _sync(dev)
        times.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    time_call.last_cpu_seconds = float(statistics.median(cpu))
    return float(statistics.median(times))


def device_name(device: torch.device) -> str:
    """Human-readable name of the device (GPU model, or CPU model and thread count)."""
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
    return f"{cpu} ({torch.get_num_threads()} torch threads)"


def _peak_memory_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: KiB


def _case(device: torch.device, coils: int, repeats: int, size: int = 128, frames: int = 20,
          spokes: int = 13, samples: int = 256) -> list[dict]:
    from mridip.operators import CartesianSense, RadialSense
    from mridip.trajectories import radial_trajectory, variable_density_lines

    g = torch.Generator().manual_seed(0)
    case = f"{size}x{size}x{frames} C{coils}"
    maps = torch.randn(coils, size, size, dtype=torch.complex64, generator=g).to(device)
    traj = radial_trajectory(frames, spokes, samples).to(device)
    x = torch.randn(frames, size, size, dtype=torch.complex64, generator=g).to(device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    t0 = time.perf_counter()
    A = RadialSense(maps, traj)
    _sync(device)
    setup = time.perf_counter() - t0
    C = CartesianSense(maps, variable_density_lines(frames, size, size, 8.0).to(device))
    y = A(x)
    calls = {
        "radial_forward": lambda: A(x),
        "radial_adjoint": lambda: A.adjoint(y),
        "radial_forward_adjoint": lambda: A.adjoint(A(x)),
        "radial_normal": lambda: A.normal(x),
        "cartesian_normal": lambda: C.normal(x),
    }
    records = []
    with torch.no_grad():
        for name, fn in calls.items():
            sec = time_call(fn, repeats=repeats, warmup=1, device=device)
            records.append({"name": name, "case": case, "device": device.type, "seconds": sec,
                            "cpu_seconds": time_call.last_cpu_seconds})
    mem = _peak_memory_mb(device)
    by = {r["name"]: r["seconds"] for r in records}
    ratio = by["radial_forward_adjoint"] / by["radial_normal"]
    cpu_by = {r["name"]: r["cpu_seconds"] for r in records}
    cpu_ratio = cpu_by["radial_forward_adjoint"] / max(cpu_by["radial_normal"], 1e-9)
    for r in records:
        r["peak_memory_mb"] = mem
        r["memory_kind"] = "cuda max_memory_allocated" if device.type == "cuda" else "process ru_maxrss"
        r["repeats"] = repeats
    records.append({"name": "radial_toeplitz_setup", "case": case, "device": device.type,
                    "seconds": setup, "repeats": 1})
    records.append({"name": "radial_fa_over_normal", "case": case, "device": device.type,
                    "seconds": None, "ratio": ratio, "cpu_ratio": cpu_ratio,
                    "coil_batch": A.coil_batch})
    return records


def _fit_case(device: torch.device, repeats: int, size: int = 128, frames: int = 20, coils: int = 8,
              spokes: int = 13, samples: int = 256) -> list[dict]:
    """Cost of fitting: the data term and one full TDDIP step, Toeplitz vs explicit NUFFT.

    ``dc_grad_*``: value and gradient (w.r.t. the image series) of the data-consistency
    loss of all frames, through ``A.normal`` (``normal``) or ``A`` and its adjoint
    (``forward``). ``tddip_step_*``: one Adam step of the default TDDIP generator
    (128 channels) on all frames with that loss.
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
    y = A(x0).detach()
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
        records.append({"name": f"dc_grad_{path}", "case": case, "device": device.type, "seconds": sec,
                        "cpu_seconds": time_call.last_cpu_seconds, "repeats": repeats})
    torch.manual_seed(0)
    model = TDDIP(frames, (size, size)).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    for path in ("normal", "forward"):
        loss = KSpaceLoss(A, y, path=path)

        def step():
            opt.zero_grad(set_to_none=True)
            v = loss(model(frames_idx), frames_idx)
            v.backward()
            opt.step()

        n = max(1, min(repeats, 3))
        sec = time_call(step, repeats=n, warmup=1, device=device)
        by[f"tddip_step_{path}"] = sec
        records.append({"name": f"tddip_step_{path}", "case": case, "device": device.type, "seconds": sec,
                        "cpu_seconds": time_call.last_cpu_seconds, "repeats": n})
    records.append({"name": "dc_forward_over_normal", "case": case, "device": device.type, "seconds": None,
                    "ratio": by["dc_grad_forward"] / by["dc_grad_normal"],
                    "step_ratio": by["tddip_step_forward"] / by["tddip_step_normal"]})
    return records


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


def main(device: str = "cpu", as_json: bool = False, repeats: int = 5, quick: bool = False) -> int:
    """Run the benchmark and print a table (or JSON records with ``as_json``); returns 0.

    Records: ``name`` (radial_forward, radial_adjoint, radial_forward_adjoint,
    radial_normal, cartesian_normal, radial_toeplitz_setup, radial_fa_over_normal,
    dc_grad_normal, dc_grad_forward, tddip_step_normal, tddip_step_forward,
    dc_forward_over_normal, and unless ``quick`` gip_step_stage1 / 2 / 3),
    ``case`` (e.g. ``"128x128x20 C8"``), ``device``, ``seconds`` (median), ``peak_memory_mb``.
    """
    dev = resolve_device(device)
    records = []
    for coils in ((8,) if quick else (8, 32)):
        records += _case(dev, coils, repeats)
    records += _fit_case(dev, repeats)
    if not quick:
        records += _gip_case(dev, repeats)
    name = device_name(dev)
    for r in records:
        r["device_name"] = name
    if as_json:
        print(json.dumps(records, indent=1))
        return 0
    print(f"mridip bench on {dev} ({name}); median of {repeats} after 1 warm-up; "
          f"13 spokes x 256 samples per frame")
    hdr = f"{'case':<16} {'operation':<26} {'seconds':>10} {'CPU s':>9} {'peak MB':>9}"
    print(hdr)
    print("-" * len(hdr))
    for r in records:
        if r["name"] == "dc_forward_over_normal":
            print(f"{r['case']:<16} {'data term fwd / normal':<26} {r['ratio']:>9.1f}x   "
                  f"(whole TDDIP step: {r['step_ratio']:.2f}x)")
        elif r["name"] == "radial_fa_over_normal":
            print(f"{r['case']:<16} {'(fwd+adj) / normal':<26} {r['ratio']:>9.1f}x "
                  f"{r['cpu_ratio']:>8.1f}x  (coil_batch {r['coil_batch']})")
        else:
            mem = r.get("peak_memory_mb")
            mem_s = f"{mem:9.0f}" if mem is not None else f"{'':>9}"
            cpu_s = f"{r['cpu_seconds']:9.4f}" if "cpu_seconds" in r else f"{'':>9}"
            print(f"{r['case']:<16} {r['name']:<26} {r['seconds']:>10.4f} {cpu_s} {mem_s}")
    kind = "CUDA max_memory_allocated per case" if dev.type == "cuda" else \
        "process peak RSS (ru_maxrss), cumulative over cases"
    print(f"peak memory: {kind}")
    return 0
