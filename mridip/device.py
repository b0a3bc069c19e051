"""Device selection with clear errors."""

from __future__ import annotations

import torch

from mridip.errors import DeviceError


def resolve_device(device: str | torch.device | None = "cpu") -> torch.device:
    """Return a usable :class:`torch.device`.

    Parameters
    ----------
    device : str, torch.device or None
        ``"cpu"`` (default, also for ``None``), ``"cuda"``, ``"cuda:N"`` or ``"auto"``
        (CUDA where present, else CPU).

    Raises
    ------
    DeviceError
        CUDA was asked for where no CUDA device is present, or the index is out of range.
    """
    if device is None:
        return torch.device("cpu")
    if isinstance(device, str) and device.strip().lower() == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise DeviceError(
            f"unknown device {device!r}: use 'cpu', 'cuda', 'cuda:N' or 'auto'"
        ) from exc
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise DeviceError(
                f"device {device!r} was asked for, but this machine has no CUDA device "
                "(or this torch build has no CUDA support): run with --device cpu, or "
                "install a CUDA build of torch on a machine with an NVIDIA GPU"
            )
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise DeviceError(
                f"device {device!r} was asked for, but only {torch.cuda.device_count()} "
                "CUDA device(s) are present (cuda:0 ...)"
            )
    elif dev.type != "cpu":
        raise DeviceError(f"device type {dev.type!r} is not supported: use 'cpu' or 'cuda'")
    return dev
