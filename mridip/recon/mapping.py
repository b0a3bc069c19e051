"""Quantitative parameter mapping: parameter maps from undersampled multi-contrast k-space.

Two routes, compared on the same data by ``mridip compare``:

- **Generated maps** (``method = "dip-mapping"``): a deep image prior outputs the maps,
  the signal model renders them to the contrast images and the fit runs through the one
  fitting loop on the k-space of all contrasts (:class:`mridip.models.mapping.MappingDIP`),
  stopped on held-out k-space; the maps are those of the returned iterate.
- **Reconstruct, then fit** (any other method with a ``[mapping]`` table): the method
  reconstructs the contrast images (CG-SENSE, L+S, temporal TV along the contrasts, ...)
  and :meth:`mridip.operators.signal.T2Decay.fit_maps` fits the signal model pixel by
  pixel.

Frames are contrasts here: a multi-echo ISMRMRD file labels its echoes with
``idx.contrast`` and lists their echo times in the header's ``sequenceParameters/TE``;
``mapping.echo_times_ms`` overrides them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from mridip.operators.signal import echo_times_of, signal_model

if TYPE_CHECKING:
    from mridip.protocols import Protocol
    from mridip.recon.pipeline import MethodResult, SliceProblem


def problem_signal_model(problem: "SliceProblem", proto: "Protocol"):
    """The protocol's signal model for one slice, echo times from the file (or the protocol)."""
    te = echo_times_of(problem.raw.header.te_ms, int(problem.A.ishape[0]),
                       proto.option("mapping", "echo_times_ms"))
    return signal_model(proto.option("mapping", "model"), te, t2_min_ms=proto.option("mapping", "t2_min_ms"),
                        t2_max_ms=proto.option("mapping", "t2_max_ms"))


def run_mapping(problem: "SliceProblem", proto: "Protocol", *, seed: int, **kwargs: Any) -> "MethodResult":
    """Fit a mapping generator (``method = "dip-mapping"``) to one slice.

    Returns the echo images ``(E, Y, X)`` of the returned iterate and, in the info,
    ``"model"``: the generator at that iterate (its maps are the iterate's). Keyword
    arguments are those of :func:`mridip.recon.pipeline.run_generator`.
    """
    from mridip.models import MappingDIP
    from mridip.recon.pipeline import run_generator

    signal = problem_signal_model(problem, proto).to(problem.y.device)

    def build(num_frames: int, image_shape: tuple[int, int], **options: Any) -> MappingDIP:
        return MappingDIP(num_frames, image_shape, signal, **options)

    return run_generator(problem, proto, seed=seed, build=build, restore_best=True, **kwargs)


def slice_parameter_maps(x: torch.Tensor, info: dict, problem: "SliceProblem",
                         proto: "Protocol") -> tuple[dict[str, np.ndarray], str]:
    """Parameter maps of one slice's result, zero outside the coil maps' valid region.

    Parameters
    ----------
    x : torch.Tensor
        complex ``(E, Y, X)``: the method's contrast images, data units.
    info : dict
        The method's info; a mapping generator's holds ``"model"`` and ``"data_scale"``.
    problem, proto
        The slice and the protocol (``[mapping]``).

    Returns
    -------
    (dict, str)
        ``{"M0": (Y, X), "T2": (Y, X)}`` float32 (``M0`` in data units, ``T2`` in ms), and
        where they come from (``"generator"`` or ``"pixel-wise fit"``).
    """
    model = info.pop("model", None)
    valid = problem.valid.to(x.device)
    if model is not None and hasattr(model, "parameter_maps"):
        maps = model.parameter_maps()
        maps["M0"] = maps["M0"] * float(info.get("data_scale", 1.0))
        source = "generator"
    else:
        maps = problem_signal_model(problem, proto).to(x.device).fit_maps(x)
        source = "pixel-wise fit"
    out = {k: (v.to(valid.device) * valid).detach().to("cpu", torch.float32).numpy() for k, v in maps.items()}
    return out, source
