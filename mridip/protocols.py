"""Protocols: one TOML file names every choice of a reconstruction.

A protocol is a file path or the name of a built-in protocol (``protocols/NAME.toml``)::

    method = "tddip"                 # a generator (dip, convdecoder, tddip, gip, dip-mapping) or a baseline
    description = "..."

    [data]                           # preprocessing
    prewhiten = true
    coil_compression = 0             # virtual coils, 0 = keep all
    spokes_per_frame = 0             # radial files without frame labels (0 = from the file;
                                     # a static method takes all spokes as one frame)
    calibration = "data+maps"        # ACS lines: also data ("data+maps") or coil maps only ("maps")
    nufft_backend = "auto"           # radial NUFFT: "auto" (fastest available), "finufft", "torchkbnufft"

    [coils]                          # coil sensitivity estimation (mridip.coils)
    method = "espirit"

    [model]                          # generator options (method-specific; see mridip.models)
    [fit]                            # fitting loop options (mridip.recon.fit.FitConfig)
    [baseline]                       # compressed-sensing options (mridip.recon.baselines)
    [stages]                         # staged schedules (graph image prior: mridip.recon.gip)
    [mapping]                        # parameter mapping (mridip.recon.mapping)
    model = "t2"                     # signal model; "" (default): images only, no maps

Every key is validated: an unknown key or a wrong type raises
:class:`~mridip.errors.ProtocolError` naming the key and the allowed ones. Overrides use
dotted keys with TOML values: ``fit.iterations=3000``, ``model.manifold="circle"``.
"""

from __future__ import annotations

import dataclasses
import inspect
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from mridip.errors import ProtocolError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

PROTOCOL_DIR = Path(__file__).resolve().parent.parent / "protocols"

GENERATOR_METHODS = ("dip", "convdecoder", "tddip", "gip", "dip-mapping", "moco-dip")
#: methods whose prior has no temporal part: a radial file without frame labels is one frame
#: of all its spokes for them (dynamic methods need data.spokes_per_frame)
STATIC_METHODS = ("dip", "convdecoder", "gridding", "cg-sense", "l1-wavelet", "tv", "grappa")

_TOP_KEYS = {"method": str, "description": str}
_SECTIONS = ("data", "coils", "model", "fit", "baseline", "stages", "mapping")
_DATA_SCHEMA: dict[str, Any] = {
    "prewhiten": True,
    "coil_compression": 0,
    "spokes_per_frame": 0,
    "slices": "all",
    "calibration": "data+maps",
    "nufft_backend": "auto",
}
#: data.calibration: what the parallel-calibration-only acquisitions (ISMRMRD bit 20) are for
CALIBRATION_USES = ("data+maps", "maps")
#: [mapping]: the signal model that turns a method's contrast images into parameter maps
#: (mridip.operators.signal); echo times come from the file header unless given here (ms)
_MAPPING_SCHEMA: dict[str, Any] = {
    "model": "",
    "echo_times_ms": [],
    "t2_min_ms": 5.0,
    "t2_max_ms": 2000.0,
    # T1 models (ir, molli, sr, vfa): inversion / saturation times, flip angles, TR where the
    # file lacks them; the T1 range; magnitude fits (polarity restoration); VFA fit and B1 map
    "ti_ms": [],
    "flip_angles_deg": [],
    "tr_ms": 0.0,
    "t1_min_ms": 50.0,
    "t1_max_ms": 5000.0,
    "magnitude": False,
    "vfa_fit": "nonlinear",
    "b1_map": "",
}
_COILS_SCHEMA: dict[str, Any] = {
    "method": "espirit",
    "calib_width": 24,
    "kernel_width": 6,
    "threshold": 0.02,
    "crop": 0.95,
    "block": 7,
    "stride": 1,
    "reference_coil": 0,
    "dcf": "pipe",
    "dcf_iterations": 30,
}


def _baseline_methods() -> dict[str, Callable]:
    from mridip.recon.baselines import METHODS

    return METHODS


def _stage_options() -> dict[str, Callable]:
    """Methods with a staged schedule: method -> function whose keyword options are [stages]."""
    out: dict[str, Callable] = {}
    try:
        from mridip.recon.gip import gip_stage_options

        out["gip"] = gip_stage_options
    except ImportError:  # pragma: no cover - the graph image prior is optional in a source tree
        pass
    from mridip.recon.moco import moco_stage_options

    out["moco-dip"] = moco_stage_options
    return out


def _generator_factories() -> dict[str, Callable]:
    from mridip.models import GENERATORS

    return GENERATORS


def available_methods() -> list[str]:
    """Names accepted by a protocol's ``method`` key."""
    return sorted(set(_generator_factories()) | set(_baseline_methods()))


def builtin_protocols() -> list[str]:
    """Names of the built-in protocols in ``protocols/``."""
    return sorted(p.stem for p in PROTOCOL_DIR.glob("*.toml"))


_ANNOTATION_DEFAULTS = {"float": 0.0, "int": 0, "str": "", "bool": False, float: 0.0, int: 0, str: "", bool: False}


def _defaults_of(fn: Callable, skip: tuple[str, ...]) -> tuple[dict[str, Any], set[str]]:
    """Keyword options of a callable: the schema of a protocol table, and the required keys.

    Options with a default give their default (its type is the type the protocol must
    use); keyword-only options without one (a baseline's ``lam``) are required and typed
    by their annotation. Tensor-valued options (``x0``) are not protocol options.
    """
    out, required = {}, set()
    for name, p in inspect.signature(fn).parameters.items():
        if name in skip or name == "x0" or p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue
        if p.default is p.empty:
            if p.annotation in _ANNOTATION_DEFAULTS:
                out[name] = _ANNOTATION_DEFAULTS[p.annotation]
                required.add(name)
            continue
        out[name] = p.default
    return out, required


def _fit_schema() -> dict[str, Any]:
    from mridip.recon.fit import FitConfig

    return {f.name: getattr(FitConfig(), f.name) for f in dataclasses.fields(FitConfig)}


def _type_ok(value: Any, default: Any) -> bool:
    if default is None:
        return True
    if isinstance(default, bool):
        return isinstance(value, bool)
    if isinstance(default, int):
        return isinstance(value, int) and not isinstance(value, bool)
    if isinstance(default, float):
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if isinstance(default, (tuple, list)):
        return isinstance(value, (list, tuple))
    return isinstance(value, type(default))


def _check_table(table: dict, schema: dict[str, Any], where: str, given: dict | None = None) -> dict[str, Any]:
    """Validate ``[where]`` against ``schema``; ``given`` is the table as the protocol file
    wrote it (before overrides), so a bad override's message names the protocol's value."""
    if not isinstance(table, dict):
        raise ProtocolError(f"[{where}] must be a table, got {type(table).__name__}")
    out = {}
    for key, value in table.items():
        if key not in schema:
            allowed = ", ".join(sorted(schema)) or "(none)"
            raise ProtocolError(f"unknown key '{where}.{key}'; allowed keys in [{where}]: {allowed}")
        if not _type_ok(value, schema[key]):
            like = f"like its default {schema[key]!r}"
            if isinstance(given, dict) and key in given and _type_ok(given[key], schema[key]):
                like = f"the protocol sets {given[key]!r}; the default is {schema[key]!r}"
            raise ProtocolError(
                f"'{where}.{key}' must be of type {type(schema[key]).__name__} "
                f"({like}), got {value!r}"
            )
        if isinstance(schema[key], float) and isinstance(value, int):
            value = float(value)
        if isinstance(schema[key], tuple):
            value = tuple(value)
        out[key] = value
    return out


@dataclass
class Protocol:
    """A validated protocol.

    Attributes
    ----------
    name : str
        File stem or built-in name.
    method : str
        Generator (``dip``, ``convdecoder``, ``tddip``, ``gip``, ``dip-mapping``) or baseline name.
    data, coils, model, baseline, stages, mapping : dict
        Validated options (only the keys given; defaults live in the code they configure).
    fit : dict
        Options of :class:`mridip.recon.fit.FitConfig`.
    text : str
        The full TOML text after overrides (stored in output files).
    """

    name: str
    method: str
    description: str = ""
    data: dict[str, Any] = field(default_factory=dict)
    coils: dict[str, Any] = field(default_factory=dict)
    model: dict[str, Any] = field(default_factory=dict)
    fit: dict[str, Any] = field(default_factory=dict)
    baseline: dict[str, Any] = field(default_factory=dict)
    stages: dict[str, Any] = field(default_factory=dict)
    mapping: dict[str, Any] = field(default_factory=dict)
    text: str = ""

    @property
    def is_generator(self) -> bool:
        return self.method in GENERATOR_METHODS

    @property
    def is_static(self) -> bool:
        """The method reconstructs each frame on its own (no temporal prior)."""
        return self.method in STATIC_METHODS

    def spokes_per_frame(self) -> int | str | None:
        """What the reader bins a radial file without frame labels by: the protocol's
        ``data.spokes_per_frame``, else ``"all"`` (one frame) for a static method, else None."""
        spf = int(self.option("data", "spokes_per_frame"))
        if spf > 0:
            return spf
        return "all" if self.is_static else None

    def option(self, section: str, key: str, default: Any = None) -> Any:
        """``section.key`` from the protocol, else the schema default, else ``default``."""
        table = getattr(self, section)
        if key in table:
            return table[key]
        schema = {"data": _DATA_SCHEMA, "coils": _COILS_SCHEMA, "mapping": _MAPPING_SCHEMA}.get(section, {})
        return schema.get(key, default)

    def fit_config(self, **changes):
        """The :class:`~mridip.recon.fit.FitConfig` of this protocol (with ``changes``)."""
        from mridip.recon.fit import FitConfig

        return FitConfig(**{**self.fit, **changes})


def _parse_value(text: str) -> Any:
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text  # a bare word: a string


def apply_overrides(doc: dict, overrides: list[str] | dict[str, Any] | None) -> dict:
    """Apply dotted ``key=value`` overrides (``fit.iterations=3000``) to a parsed protocol."""
    if not overrides:
        return doc
    items = overrides.items() if isinstance(overrides, dict) else [_split_override(o) for o in overrides]
    for key, value in items:
        if isinstance(value, str) and not isinstance(overrides, dict):
            value = _parse_value(value)
        parts = key.split(".")
        if len(parts) == 1:
            if parts[0] in _SECTIONS:
                raise ProtocolError(f"override '{key}' names a table; give a key inside it, e.g. {key}.KEY=VALUE")
            doc[parts[0]] = value
        elif len(parts) == 2:
            if parts[0] not in _SECTIONS:
                raise ProtocolError(f"override '{key}': unknown table '{parts[0]}'; tables: {', '.join(_SECTIONS)}")
            doc.setdefault(parts[0], {})[parts[1]] = value
        else:
            raise ProtocolError(f"override '{key}': use TABLE.KEY=VALUE (one dot)")
    return doc


def _split_override(text: str) -> tuple[str, str]:
    if "=" not in text:
        raise ProtocolError(f"override {text!r} must look like TABLE.KEY=VALUE, e.g. fit.iterations=3000")
    k, v = text.split("=", 1)
    return k.strip(), v.strip()


def resolve_path(protocol: str | Path) -> Path:
    """A protocol file path, or the file of a built-in protocol name."""
    p = Path(protocol)
    if p.suffix == ".toml" or p.exists():
        if not p.exists():
            raise ProtocolError(f"protocol file {p} does not exist")
        return p
    builtin = PROTOCOL_DIR / f"{protocol}.toml"
    if builtin.exists():
        return builtin
    raise ProtocolError(
        f"unknown protocol {str(protocol)!r}: give a .toml file or one of the built-in protocols: "
        + ", ".join(builtin_protocols())
    )


def load_protocol(protocol: str | Path | dict, overrides: list[str] | dict[str, Any] | None = None) -> Protocol:
    """Read, override and validate a protocol.

    Parameters
    ----------
    protocol : str, Path or dict
        Built-in name, ``.toml`` path, or an already parsed dict.
    overrides : list of "TABLE.KEY=VALUE" or dict {"TABLE.KEY": value}
        Applied before validation.

    Raises
    ------
    ProtocolError
        Unknown protocol, unknown key, wrong type, unknown method.
    """
    if isinstance(protocol, dict):
        doc, name = dict(protocol), str(protocol.get("name", "custom"))
        doc = {k: (dict(v) if isinstance(v, dict) else v) for k, v in doc.items()}
        doc.pop("name", None)
    else:
        path = resolve_path(protocol)
        try:
            doc = tomllib.loads(path.read_text())
        except tomllib.TOMLDecodeError as exc:
            raise ProtocolError(f"protocol {path} is not valid TOML: {exc}") from exc
        name = path.stem
    # the protocol's own values, before overrides: a bad override's message names them
    written = {k: dict(v) for k, v in doc.items() if isinstance(v, dict)}
    doc = apply_overrides(doc, overrides)
    for key in doc:
        if key not in _TOP_KEYS and key not in _SECTIONS:
            raise ProtocolError(
                f"unknown top-level key '{key}'; allowed: {', '.join(list(_TOP_KEYS) + list(_SECTIONS))}"
            )
    method = doc.get("method")
    if not isinstance(method, str):
        raise ProtocolError("a protocol needs method = \"NAME\"; methods: " + ", ".join(available_methods()))
    gens, bases = _generator_factories(), _baseline_methods()
    if method not in gens and method not in bases:
        raise ProtocolError(f"unknown method {method!r}; methods: {', '.join(available_methods())}")
    model_schema, _ = _defaults_of(gens[method], ("num_frames", "image_shape", "signal")) if method in gens else ({}, set())
    base_schema, required = _defaults_of(bases[method], ("A", "y")) if method in bases else ({}, set())
    if method in bases and "lam" in base_schema:
        base_schema = {**base_schema, "tune": False, "tune_values": [0.0]}
    stage_fns = _stage_options()
    stage_schema = _defaults_of(stage_fns[method], ())[0] if method in stage_fns else {}
    given = set(doc.get("baseline", {})) | ({"lam"} if doc.get("baseline", {}).get("tune") else set())
    missing = sorted(required - given)
    if missing:
        raise ProtocolError(
            f"method {method!r} needs baseline.{missing[0]}" + (f" (and {', '.join(missing[1:])})" if missing[1:] else "")
            + f"; set it in the protocol's [baseline] table or with --set baseline.{missing[0]}=VALUE"
        )
    proto = Protocol(
        name=name,
        method=method,
        description=str(doc.get("description", "")),
        data=_check_table(doc.get("data", {}), _DATA_SCHEMA, "data", written.get("data")),
        coils=_check_table(doc.get("coils", {}), _COILS_SCHEMA, "coils", written.get("coils")),
        model=_check_table(doc.get("model", {}), model_schema, "model", written.get("model")),
        fit=_check_table(doc.get("fit", {}), _fit_schema() if method in gens else {}, "fit", written.get("fit")),
        baseline=_check_table(doc.get("baseline", {}), base_schema, "baseline", written.get("baseline")),
        stages=_check_table(doc.get("stages", {}), stage_schema, "stages", written.get("stages")),
        mapping=_check_table(doc.get("mapping", {}), _MAPPING_SCHEMA, "mapping", written.get("mapping")),
    )
    _check_mapping(proto)
    cal = proto.option("data", "calibration")
    if cal not in CALIBRATION_USES:
        raise ProtocolError(f"unknown data.calibration {cal!r}; allowed: {', '.join(map(repr, CALIBRATION_USES))} "
                            "(calibration lines as data and for coil maps, or for coil maps only)")
    from mridip.operators.nufft import BACKEND_CHOICES

    nb = proto.option("data", "nufft_backend")
    if str(nb).lower() not in BACKEND_CHOICES:
        raise ProtocolError(f"unknown data.nufft_backend {nb!r}; allowed: {', '.join(map(repr, BACKEND_CHOICES))} "
                            "(radial NUFFT library; 'auto' = finufft where installed, else torchkbnufft)")
    if proto.is_generator:
        proto.fit_config()  # validates values, not only types
    proto.text = dumps(doc)
    return proto


def _check_mapping(proto: Protocol) -> None:
    """Values of [mapping] (types are checked by the schema)."""
    from mridip.operators.signal import SIGNAL_MODELS

    model = proto.option("mapping", "model")
    if model and model not in SIGNAL_MODELS:
        raise ProtocolError(f"unknown mapping.model {model!r}; signal models: {', '.join(SIGNAL_MODELS)} "
                            "(or \"\" for no parameter maps)")
    if proto.method == "dip-mapping" and not model:
        raise ProtocolError("method 'dip-mapping' generates parameter maps: set mapping.model "
                            f"(one of {', '.join(SIGNAL_MODELS)})")
    for key, unit in (("echo_times_ms", "ms"), ("ti_ms", "ms"), ("flip_angles_deg", "deg")):
        vals = proto.option("mapping", key)
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in vals):
            raise ProtocolError(f"mapping.{key} must be a list of numbers ({unit}), got {vals!r}")
    lo1, hi1 = proto.option("mapping", "t1_min_ms"), proto.option("mapping", "t1_max_ms")
    if not 0 < lo1 < hi1:
        raise ProtocolError(f"need 0 < mapping.t1_min_ms < mapping.t1_max_ms, got {lo1} and {hi1}")
    if proto.option("mapping", "tr_ms") < 0:
        raise ProtocolError(f"mapping.tr_ms must be >= 0 ms (0: from the file), got {proto.option('mapping', 'tr_ms')}")
    if proto.option("mapping", "vfa_fit") not in ("nonlinear", "linear"):
        raise ProtocolError(f"mapping.vfa_fit must be \"nonlinear\" or \"linear\", got {proto.option('mapping', 'vfa_fit')!r}")
    lo, hi = proto.option("mapping", "t2_min_ms"), proto.option("mapping", "t2_max_ms")
    if not 0 < lo < hi:
        raise ProtocolError(f"need 0 < mapping.t2_min_ms < mapping.t2_max_ms, got {lo} and {hi}")


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, str):
        return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    raise ProtocolError(f"cannot write {v!r} ({type(v).__name__}) to TOML")


def dumps(doc: dict) -> str:
    """TOML text of a protocol dict (top-level scalars, then one table per section)."""
    lines = [f"{k} = {_toml_value(v)}" for k, v in doc.items() if not isinstance(v, dict)]
    for k, v in doc.items():
        if isinstance(v, dict):
            lines.append(f"\n[{k}]")
            lines.extend(f"{kk} = {_toml_value(vv)}" for kk, vv in v.items())
    return "\n".join(lines) + "\n"
