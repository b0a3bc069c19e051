"""Generator networks of the deep-image-prior family.

Every generator follows the contract documented in :mod:`mridip.models.common`:
``G(frames: LongTensor (B,)) -> complex64 (B, Y, X)``, with ``G.num_frames`` and
``G.image_shape``, fixed inputs as buffers, input noise only in training mode.

:data:`GENERATORS` maps a protocol's generator name to a constructor
``(num_frames, image_shape, **options) -> generator``; :func:`build_generator` calls it
and turns an unknown option into a :class:`~mridip.errors.ProtocolError`.
"""

from __future__ import annotations

import inspect
from typing import Any, Callable

from torch import nn

from mridip.errors import ProtocolError
from mridip.models.common import (
    channels_to_complex,
    complex_to_channels,
    count_parameters,
)
from mridip.models.gip import GraphImagePrior
from mridip.models.mapping import MappingDIP
from mridip.models.motion import MoCoDIP
from mridip.models.dip import ConvDecoder, DIPGenerator, SkipNet, make_convdecoder, make_dip
from mridip.models.tddip import (
    TDDIP,
    MapNet,
    TDDIPNet,
    circle_manifold,
    helix_manifold,
    line_manifold,
)

GENERATORS: dict[str, Callable[..., nn.Module]] = {
    "dip": make_dip,
    "convdecoder": make_convdecoder,
    "tddip": TDDIP,
    "gip": GraphImagePrior,
    "dip-mapping": MappingDIP,
    "moco-dip": MoCoDIP,
}


def generator_options(name: str) -> list[str]:
    """Names of the keyword options that generator ``name`` accepts."""
    if name not in GENERATORS:
        raise ProtocolError(
            f"unknown generator {name!r}: use one of {', '.join(sorted(GENERATORS))}"
        )
    params = inspect.signature(GENERATORS[name]).parameters
    # a mapping generator's signal model comes from the data, not from the protocol's [model]
    return [p for p in params if p not in ("self", "num_frames", "image_shape", "signal")]


def build_generator(
    name: str, num_frames: int, image_shape: tuple[int, int], **options: Any
) -> nn.Module:
    """Build generator ``name`` (a key of :data:`GENERATORS`) for ``T`` frames of ``(Y, X)``.

    Raises
    ------
    ProtocolError
        Unknown generator name or option (the message lists the valid ones).
    """
    valid = generator_options(name)
    unknown = sorted(set(options) - set(valid))
    if unknown:
        raise ProtocolError(
            f"unknown option(s) {', '.join(unknown)} for generator {name!r}: "
            f"valid options are {', '.join(valid)}"
        )
    return GENERATORS[name](num_frames, image_shape, **options)


__all__ = [
    "GENERATORS",
    "build_generator",
    "generator_options",
    "channels_to_complex",
    "complex_to_channels",
    "count_parameters",
    "GraphImagePrior",
    "MappingDIP",
    "MoCoDIP",
    "SkipNet",
    "ConvDecoder",
    "DIPGenerator",
    "make_dip",
    "make_convdecoder",
    "TDDIP",
    "MapNet",
    "TDDIPNet",
    "helix_manifold",
    "circle_manifold",
    "line_manifold",
]
