"""Quantitative parameter mapping: parameter maps from undersampled multi-contrast k-space.

Two routes, compared on the same data by ``mridip compare``:

- **Generated maps** (``method = "dip-mapping"``): a deep image prior outputs the maps,
  the signal model renders them to the contrast images and the fit runs through the one
  fitting loop on the k-space of all contrasts (:class:`mridip.models.mapping.MappingDIP`),
  stopped on held-out k-space; the maps are those of the returned iterate.
- **Reconstruct, then fit** (any other method with a ``[mapping]`` table): the method
  reconstructs the contrast images (CG-SENSE, L+S, temporal TV along the contrasts, ...)
  and the signal model's ``fit_maps`` (e.g. :meth:`mridip.operators.signal.T2Decay.fit_maps`)
  fits it pixel by pixel.

Frames are contrasts here: a multi-echo ISMRMRD file labels its echoes with
``idx.contrast`` and lists their echo times in the header's ``sequenceParameters/TE``
(``mapping.echo_times_ms`` overrides them); a T1 file lists its inversion (saturation)
times in ``sequenceParameters/TI`` (``mapping.ti_ms``), a VFA file its flip angles in
``flipAngle_deg`` and TR in ``TR`` (``mapping.flip_angles_deg``, ``mapping.tr_ms``). The
operator ``problem.A`` is Cartesian or radial alike: radial frames are the contrasts.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from mridip.operators.signal import acquisition_parameters, signal_model

if TYPE_CHECKING:
    from mridip.protocols import Protocol
    from mridip.recon.pipeline import MethodResult, SliceProblem


def problem_signal_model(problem: "SliceProblem", proto: "Protocol"):
    """The protocol's signal model for one slice, acquisition parameters from the file (or the protocol).

    ``t2``: echo times (header TE list or ``mapping.echo_times_ms``); ``ir`` / ``molli`` /
    ``sr``: inversion (saturation) times (header TI list or ``mapping.ti_ms``); ``vfa``: flip
    angles (header flipAngle_deg list or ``mapping.flip_angles_deg``), TR (header or
    ``mapping.tr_ms``) and an optional B1 map (``mapping.b1_map``, a ``.npy`` ``(Y, X)``).
    """
    name = proto.option("mapping", "model")
    mapping = {k: proto.option("mapping", k) for k in ("echo_times_ms", "ti_ms", "flip_angles_deg", "tr_ms")}
    acq = acquisition_parameters(name, problem.raw.header, int(problem.A.ishape[0]), mapping)
    options = {k: proto.option("mapping", k) for k in ("t2_min_ms", "t2_max_ms", "t1_min_ms", "t1_max_ms")}
    if name == "vfa" and proto.option("mapping", "b1_map"):
        options["b1"] = load_b1_map(proto.option("mapping", "b1_map"), tuple(problem.A.ishape[-2:]))
    return signal_model(name, **acq, **options)


def load_b1_map(path: str, image_shape: tuple[int, int]) -> torch.Tensor:
    """A relative B1 map (actual / nominal flip angle) from a ``.npy`` file: float32 ``(Y, X)``.

    Raises
    ------
    InputFileError
        When the file is missing, unreadable or not ``image_shape``.
    """
    from mridip.errors import InputFileError

    try:
        b1 = np.load(path)
    except (OSError, ValueError) as exc:
        raise InputFileError(f"mapping.b1_map {path!r} is not a readable .npy array: {exc}") from exc
    b1 = np.squeeze(np.asarray(b1, dtype=np.float32))
    if b1.shape != tuple(image_shape):
        raise InputFileError(f"mapping.b1_map {path!r} is {b1.shape}; the images are {tuple(image_shape)} (Y, X)")
    return torch.from_numpy(b1)


def fit_options(proto: "Protocol") -> dict[str, Any]:
    """Keyword options of the signal model's ``fit_maps`` from [mapping] (magnitude, vfa_fit)."""
    name = proto.option("mapping", "model")
    if name in ("ir", "molli"):
        return {"magnitude": bool(proto.option("mapping", "magnitude"))}
    if name == "vfa":
        return {"method": proto.option("mapping", "vfa_fit")}
    return {}


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
        The signal model's maps, float32 ``(Y, X)`` each (amplitudes ``M0``, ``A``, ``B`` in
        data units, times ``T2``, ``T1``, ``T1star`` in ms): ``{"M0", "T2"}`` for t2,
        ``{"M0", "T1"}`` for ir / sr / vfa (a pixel-wise IR fit adds ``efficiency``),
        ``{"M0", "T1", "T1star", "A", "B"}`` for molli; and where they come from
        (``"generator"`` or ``"pixel-wise fit"``).
    """
    model = info.pop("model", None)
    valid = problem.valid.to(x.device)
    if model is not None and hasattr(model, "parameter_maps"):
        maps = model.parameter_maps()
        for name in getattr(model.signal, "amplitude_names", ("M0",)):
            maps[name] = maps[name] * float(info.get("data_scale", 1.0))
        source = "generator"
    else:
        maps = problem_signal_model(problem, proto).to(x.device).fit_maps(x, **fit_options(proto))
        source = "pixel-wise fit"
    out = {k: (v.to(valid.device) * valid).detach().to("cpu", torch.float32).numpy() for k, v in maps.items()}
    return out, source
