"""The one rule that keeps a user's files: never write over an input, never replace without asking.

Every command that writes files (``mridip recon``, ``compare``, ``batch``) checks its
targets here *before* any work starts, so a refused run costs nothing:

- a target that is the same file as any input (by resolved path, or by inode through
  :func:`os.path.samefile`: a hard link or a symlink to the raw file counts) is always
  refused, even with ``--overwrite``: it would destroy the raw data;
- an existing target is refused unless the user gave ``--overwrite``.

Which files a command protects is its choice: ``mridip recon`` checks its main output
and, with ``--provenance``, the sibling ``STEM.h5``; previews (``.png`` / ``.gif``) are
derived from the main output and replaced with it. ``compare`` and ``batch`` check
their folder's marker files (``results.md``, ``results.csv``, a manifest, the
per-protocol ``.h5`` files) with :func:`refuse_overwrite_dir`.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from mridip.errors import MridipError

__all__ = ["OverwriteError", "same_file", "refuse_overwrite", "refuse_overwrite_dir", "planned_outputs"]


class OverwriteError(MridipError):
    """A write would destroy an input, or replace an existing file without ``--overwrite``."""


def same_file(a: str | os.PathLike, b: str | os.PathLike) -> bool:
    """True if ``a`` and ``b`` name one file: equal resolved paths, or one inode (hard link).

    A path that does not exist is the same as another only by its resolved path.
    """
    pa, pb = Path(a), Path(b)
    try:
        if pa.resolve() == pb.resolve():
            return True
    except OSError:  # a symlink loop: compare what can be compared below
        pass
    try:
        return os.path.samefile(pa, pb)
    except OSError:  # one of them does not exist
        return False


def _inputs(inputs: Iterable[str | os.PathLike | None] | str | os.PathLike | None) -> list[Path]:
    if inputs is None:
        return []
    if isinstance(inputs, (str, os.PathLike)):
        inputs = [inputs]
    out = []
    for i in inputs:
        if i is None:
            continue
        p = Path(i)
        out.append(p)
        # a BART array is a NAME.cfl + NAME.hdr pair given by either name (or by NAME)
        if p.suffix in (".cfl", ".hdr") or (not p.suffix and (p.with_suffix(".cfl")).exists()):
            out += [p.with_suffix(".cfl"), p.with_suffix(".hdr")]
    return out


def refuse_overwrite(
    path: str | os.PathLike,
    *,
    inputs: Iterable[str | os.PathLike | None] = (),
    overwrite: bool = False,
    what: str = "output file",
) -> None:
    """Raise :class:`OverwriteError` if writing ``path`` would lose a user's data.

    Parameters
    ----------
    path : path
        The file about to be written.
    inputs : iterable of paths
        Every file the run reads (raw data, reference, trajectory, coil maps); ``None``
        entries are skipped. ``path`` being any of them is refused even with ``overwrite``.
    overwrite : bool
        The user's ``--overwrite``: an existing ``path`` may be replaced.
    what : str
        What ``path`` is, for the message (``"output file"``, ``"provenance file"``).

    Raises
    ------
    OverwriteError
        ``path`` is an input (always), is a folder, or exists and ``overwrite`` is False.
    """
    p = Path(path)
    for i in _inputs(inputs):
        if same_file(p, i):
            raise OverwriteError(
                f"{what} {p} is the input file {i}: writing it would destroy the input data "
                "(--overwrite does not allow this); choose another output name"
            )
    if p.is_dir():
        raise OverwriteError(f"{what} {p} is a folder: give a file name")
    if (p.exists() or p.is_symlink()) and not overwrite:
        raise OverwriteError(
            f"{what} {p} exists: give --overwrite to replace it, or choose another output name"
        )


def refuse_overwrite_dir(
    path: str | os.PathLike,
    *,
    inputs: Iterable[str | os.PathLike | None] = (),
    overwrite: bool = False,
    marker_files: Iterable[str] = ("results.md", "results.csv"),
) -> None:
    """Raise :class:`OverwriteError` if writing into output folder ``path`` would lose data.

    The folder may exist (it is created where missing). What is protected are its
    ``marker_files`` (names relative to ``path``: a table, a manifest, per-method
    ``.h5`` files): one that is an input is always refused; one that exists is refused
    unless ``overwrite``. Other files in the folder are left alone.

    Parameters
    ----------
    path : path
        Output folder.
    inputs : iterable of paths
        Every file the run reads; see :func:`refuse_overwrite`.
    overwrite : bool
        The user's ``--overwrite`` (or a resume, which replaces only what it must).
    marker_files : iterable of str
        File names inside ``path`` that the run writes.

    Raises
    ------
    OverwriteError
        ``path`` is a file, an input lies at a marker's place, or a marker exists and
        ``overwrite`` is False.
    """
    d = Path(path)
    if d.exists() and not d.is_dir():
        raise OverwriteError(f"output folder {d} is a file: give a folder name")
    ins = _inputs(inputs)
    for i in ins:
        if same_file(d, i):
            raise OverwriteError(f"output folder {d} is the input {i}: choose another output folder")
    existing = []
    for name in marker_files:
        target = d / name
        for i in ins:
            if same_file(target, i):
                raise OverwriteError(
                    f"output file {target} is the input file {i}: writing it would destroy the input "
                    "data (--overwrite does not allow this); choose another output folder"
                )
        if target.exists():
            existing.append(target)
    if existing and not overwrite:
        more = f" (and {len(existing) - 1} more)" if len(existing) > 1 else ""
        raise OverwriteError(
            f"output folder {d} already holds {existing[0].name}{more} from an earlier run: give --overwrite "
            "to replace them, or choose another output folder"
        )


def planned_outputs(path: str | os.PathLike, format: str, *, provenance: bool = False) -> list[tuple[Path, str]]:
    """The main files ``mridip recon -o PATH`` writes, with what each is: the rule's targets.

    The output itself and, for ``.mrd`` / NIfTI with ``provenance``, the sibling ``STEM.h5``
    (``STEM.mridip.h5`` where the output is itself named ``STEM.h5``), as
    :func:`mridip.io.export.save_output` names them. Previews (``STEM.png``, ``STEM.gif``)
    and NIfTI's per-map files are derived from the same result and replaced with it.
    """
    from mridip.io.export import output_stem

    p = Path(path)
    out = [(p, "output file")]
    if provenance and format != "h5":
        side = output_stem(p) + ".h5"
        if os.path.abspath(side) == os.path.abspath(p):
            side = output_stem(p) + ".mridip.h5"
        out.append((Path(side), "provenance file"))
    return out
