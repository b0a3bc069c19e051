"""mridip: MRI reconstruction from raw k-space with untrained generator networks.

Deep Image Prior family (DIP, ConvDecoder, TDDIP, graph image prior) fitted through
Cartesian and radial (NUFFT) multi-coil forward models, compared fairly with
compressed-sensing baselines.
"""

# First, before anything imports torch: CPU threads that hold up on shared cores
# (mridip/threads.py; MRIDIP_THREADS=off turns it off).
from mridip.threads import apply_thread_policy as _apply_thread_policy

_apply_thread_policy()

from importlib.metadata import PackageNotFoundError, version as _version  # noqa: E402

try:
    __version__ = _version("mridip")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+unknown"

from mridip.data import Header, RawData, Reconstruction  # noqa: E402
from mridip.errors import MridipError  # noqa: E402

__all__ = ["Header", "RawData", "Reconstruction", "MridipError", "reconstruct", "__version__"]


def __getattr__(name: str):
    # ``mridip.reconstruct`` is imported on first use: ``import mridip`` stays light (no
    # operators, models or solvers until a reconstruction is asked for)
    if name == "reconstruct":
        from mridip.recon.pipeline import reconstruct

        globals()["reconstruct"] = reconstruct
        return reconstruct
    raise AttributeError(f"module 'mridip' has no attribute {name!r}")
