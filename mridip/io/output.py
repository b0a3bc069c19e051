"""Reconstruction output files (.h5): the DESIGN.md output contract.

Layout::

    /reconstruction            complex64 (S, T, Y, X)
    /parameter_maps/<name>     float32 (S, Y, X), times in ms      (mapping only)
    /reference                 (S, T, Y, X) reference from the input, where it had one
    /coil_maps                 complex64 (S, C, Y, X), the coil maps used (reuse: --coil-maps FILE)
    /log/<name>                1-D per-iteration records (iteration, loss, val_loss, ...)
    attributes                 method, mridip_version, and everything in recon.attrs:
                               strings and numbers as they are; dicts, lists, tuples and
                               None as JSON text (their names listed in the attribute
                               ``_json_attrs`` so that loading decodes them again)

Writing goes to a temporary file in the target folder that is renamed over the target
(``os.replace``, atomic on POSIX and Windows) only once it is complete, so a crash or an
interrupt never leaves a half-written file, nor destroys an older file of that name.
"""

from __future__ import annotations

import json
import os
import tempfile

import numpy as np

from mridip.data import Reconstruction
from mridip.errors import InputFileError, ShapeError

_FORMAT = "mridip-reconstruction"


def _attr_value(name: str, v):
    """(value to store, is_json)."""
    if isinstance(v, (np.generic,)):
        v = v.item()
    if isinstance(v, bool) or isinstance(v, (int, float, str)):
        return v, False
    if isinstance(v, bytes):
        return v.decode("utf-8", errors="replace"), False
    if isinstance(v, np.ndarray):
        v = v.tolist()
    if v is None or isinstance(v, (dict, list, tuple)):
        try:
            return json.dumps(v, default=lambda o: o.item() if hasattr(o, "item") else str(o)), True
        except (TypeError, ValueError) as exc:
            raise ShapeError(f"attribute {name!r} cannot be written as JSON: {exc}") from exc
    return str(v), False


def save_reconstruction(path: str | os.PathLike, recon: Reconstruction) -> str:
    """Write ``recon`` to ``path`` (.h5) atomically; returns the path written.

    Parameters
    ----------
    path : str or PathLike
        Target file; its folder is created if missing. An existing file is replaced only
        once the new one is complete.
    recon : Reconstruction
        ``image`` complex64 ``(S, T, Y, X)``; ``parameter_maps`` float32 ``(S, Y, X)``;
        ``reference`` ``(S, T, Y, X)`` or None; ``log`` 1-D arrays; ``attrs``.
    """
    import h5py

    def write(tmp: str) -> None:
        with h5py.File(tmp, "w") as f:
            f.create_dataset("reconstruction", data=np.asarray(recon.image, dtype=np.complex64))
            if recon.parameter_maps:
                g = f.create_group("parameter_maps")
                for name, m in recon.parameter_maps.items():
                    m = np.asarray(m)
                    if np.iscomplexobj(m):
                        raise ShapeError(f"parameter map {name!r} is complex; maps are real (float32, ms)")
                    if m.ndim == 2:
                        m = m[None]
                    if m.ndim != 3:
                        raise ShapeError(f"parameter map {name!r} must be (S, Y, X), got shape {m.shape}")
                    g.create_dataset(name, data=m.astype(np.float32))
            if recon.reference is not None:
                ref = np.asarray(recon.reference)
                ref = ref.astype(np.complex64 if np.iscomplexobj(ref) else np.float32)
                f.create_dataset("reference", data=ref)
            if recon.coil_maps is not None:
                f.create_dataset("coil_maps", data=np.asarray(recon.coil_maps, dtype=np.complex64))
            if recon.motion:
                g = f.create_group("motion")
                for name, m in recon.motion.items():
                    m = np.asarray(m)
                    g.create_dataset(name, data=m.astype(np.complex64 if np.iscomplexobj(m) else np.float32))
            if recon.log:
                g = f.create_group("log")
                for name, v in recon.log.items():
                    g.create_dataset(name, data=np.asarray(v).reshape(-1))
            json_names = []
            attrs = {"method": recon.method, "format": _FORMAT}
            try:
                from mridip import __version__

                attrs["mridip_version"] = __version__
            except ImportError:  # pragma: no cover
                pass
            attrs.update(recon.attrs)
            attrs["method"] = recon.method
            for name, v in attrs.items():
                val, is_json = _attr_value(name, v)
                f.attrs[name] = val
                if is_json:
                    json_names.append(name)
            f.attrs["_json_attrs"] = json.dumps(json_names)

    return write_atomically(path, write)


def write_atomically(path: str | os.PathLike, write, suffix: str = "") -> str:
    """``write(tmp)`` to a fresh temporary name in ``path``'s folder, then rename it over ``path``.

    A crash or Ctrl-C leaves neither a half-written file nor a damaged older one. ``suffix``
    ends the temporary name (writers that choose a format by the name, e.g. nibabel's
    ``.nii.gz``). The result gets the permissions of an ordinary new file (mkstemp's are
    0600). Returns the path written.
    """
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", suffix=".tmp" + suffix, dir=folder)
    os.close(fd)
    os.remove(tmp)  # the writers create the file themselves (HDF5 cannot open an empty file)
    try:
        write(tmp)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    return path


def file_sha256(path: str | os.PathLike) -> str:
    """SHA-256 hex digest of a file's bytes (provenance of a reconstruction's input)."""
    import hashlib

    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def load_reconstruction(path: str | os.PathLike) -> Reconstruction:
    """Read a file written by :func:`save_reconstruction`.

    Raises
    ------
    InputFileError
        Missing, truncated or not a mridip reconstruction file.
    """
    from mridip.io.ismrmrd import _corrupt, _open_h5

    path = os.fspath(path)
    f = _open_h5(path)
    try:
        if "reconstruction" not in f:
            raise InputFileError(
                f"{path!r} holds no 'reconstruction' dataset (has {sorted(f.keys())}): it is not "
                "a mridip output file (raw files are read with mridip.io.load_raw)"
            )
        image = np.asarray(f["reconstruction"][()])
        maps = {k: np.asarray(v[()]) for k, v in f["parameter_maps"].items()} if "parameter_maps" in f else {}
        log = {k: np.asarray(v[()]) for k, v in f["log"].items()} if "log" in f else {}
        reference = np.asarray(f["reference"][()]) if "reference" in f else None
        coil_maps = np.asarray(f["coil_maps"][()]) if "coil_maps" in f else None
        motion = {k: np.asarray(v[()]) for k, v in f["motion"].items()} if "motion" in f else {}
        raw_attrs = dict(f.attrs.items())
    except InputFileError:
        f.close()
        raise
    except (OSError, KeyError, RuntimeError) as exc:
        f.close()
        raise _corrupt(path, exc) from exc
    f.close()
    json_names = set(json.loads(raw_attrs.pop("_json_attrs", "[]")))
    attrs = {}
    for k, v in raw_attrs.items():
        if isinstance(v, bytes):
            v = v.decode("utf-8", errors="replace")
        elif isinstance(v, np.generic):
            v = v.item()
        if k in json_names:
            v = json.loads(v)
        attrs[k] = v
    method = str(attrs.pop("method", "unknown"))
    attrs.pop("format", None)
    return Reconstruction(image=image, method=method, attrs=attrs, parameter_maps=maps,
                          reference=reference, log=log, coil_maps=coil_maps, motion=motion)
