"""``mridip demo``: simulate a radial cardiac cine, reconstruct it several ways, compare, report.

The small configuration (default) runs on 2 CPU cores in a few minutes: a 64 x 64,
12-frame, 4-coil golden-angle radial cine with 13 spokes per frame (R ~ 7.7), written as
a real ISMRMRD file with a noise scan, then gridding, CG-SENSE, temporal TV (GRASP),
L+S and TDDIP on the same data and coil maps, scored against the phantom's ground truth
in the whole field of view and in the heart. ``--full`` runs the 128 x 128, 20-frame,
8-coil case of the benchmarks with the protocols as they are, spatio-temporal TV and the
graph image prior included, meant for a GPU.
"""

from __future__ import annotations

from pathlib import Path

#: The small CPU configuration. The generator runs a reduced network (32 channels) and
#: the baselines tune lambda over short grids around the values the held-out rule picked
#: on the benchmark phantoms (docs/baselines.md), so that everything fits about 5 minutes
#: on 2 cores; --full uses the protocols as they are. Spatio-temporal TV, the strongest
#: baseline on this piecewise-constant phantom (docs/results.md), costs as much as all the
#: rest together on a CPU: add it with ``mridip compare ... -p spatiotemporal-tv`` or --full.
SMALL = {
    "size": 64, "frames": 12, "coils": 4, "spokes_per_frame": 13,
    "protocols": ["gridding", "cg-sense", "temporal-tv", "lplus-s", "tddip-radial-cine"],
    "overrides": [
        "temporal-tv:baseline.tune_values=[0.0005, 0.001, 0.002]",
        "lplus-s:baseline.tune_values=[0.0001, 0.0002, 0.0005]",
        "tddip-radial-cine:model.channels=32",
        "tddip-radial-cine:fit.iterations=9000",
        "tddip-radial-cine:fit.val_every=300",
        "tddip-radial-cine:fit.patience=3000",
    ],
}
FULL = {
    "size": 128, "frames": 20, "coils": 8, "spokes_per_frame": 13,
    "protocols": ["gridding", "cg-sense", "temporal-tv", "spatiotemporal-tv", "lplus-s", "tddip-radial-cine",
                  "gip-radial-cine"],
    "overrides": [],
}


def run_demo(output: str = "mridip-demo", *, full: bool = False, device: str = "cpu", seed: int = 0,
             progress: bool = True, overrides: list[str] | None = None) -> list[dict]:
    """Simulate, reconstruct, compare and report into ``output``; returns the table rows.

    ``overrides`` (``[PROTOCOL:]TABLE.KEY=VALUE``, as ``mridip compare --set``) are applied
    after the configuration's own, so they win: e.g. ``tddip-radial-cine:fit.iterations=20000``.
    """
    from data_tools.phantom import simulate_to_files
    from mridip.compare import compare, split_overrides
    from mridip.device import resolve_device
    from mridip.protocols import load_protocol

    cfg = FULL if full else SMALL
    protocols = list(cfg["protocols"])
    overrides = [*cfg["overrides"], *(overrides or [])]
    # a wrong --set or device fails here, before minutes of simulation and reconstruction
    resolve_device(device)
    per = split_overrides(overrides, protocols)
    for p in protocols:
        load_protocol(p, per[p])
    out = Path(output)
    data = out / "data"
    print(f"simulating a {cfg['size']}x{cfg['size']}, {cfg['frames']}-frame, {cfg['coils']}-coil radial cine "
          f"({cfg['spokes_per_frame']} golden-angle spokes per frame) into {data}/", flush=True)
    raw_path, truth_path = simulate_to_files(
        data, kind="radial", size=cfg["size"], frames=cfg["frames"], coils=cfg["coils"],
        spokes_per_frame=cfg["spokes_per_frame"], snr=30.0, seed=seed,
    )
    print(f"reconstructing with {', '.join(protocols)} on {device}", flush=True)
    # the folder is the demo's own, remade from the seed: a rerun replaces it (nothing of the user's)
    return compare(raw_path, protocols, out, reference=truth_path, device=device,
                   overrides=overrides, seed=seed, progress=progress, overwrite=True)
