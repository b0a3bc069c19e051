"""User-facing errors.

Every problem a user can cause (a bad file, a wrong shape, an unknown protocol key,
a device that is not there) raises a subclass of :class:`MridipError` whose message
names the problem and the way out. The command line prints that message without a
traceback; library users can catch the class.
"""

from __future__ import annotations


class MridipError(Exception):
    """Base class of every error that mridip raises for bad input or configuration."""


class InputFileError(MridipError):
    """A raw or output file is missing, truncated, of an unknown format or inconsistent."""


class ShapeError(MridipError, ValueError):
    """A tensor does not have the shape an operator or function expects."""


class ProtocolError(MridipError, ValueError):
    """A protocol file or override is invalid (unknown key, wrong type, bad value)."""


class DeviceError(MridipError, RuntimeError):
    """A requested compute device is not available."""


class DependencyError(MridipError, ImportError):
    """An optional dependency (or external tool such as BART) is not installed."""
