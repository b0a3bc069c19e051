"""Siemens twix ``.dat`` raw files (VB and VD/VE) through ``twixtools``, via ISMRMRD.

A twix file is converted to an ISMRMRD dataset (:func:`twix_to_ismrmrd`) and read with
:func:`mridip.io.ismrmrd.read_ismrmrd`, so exactly the ISMRMRD rules of ``DESIGN.md``
(noise prewhitening, calibration data, reversed lines, readout-oversampling crop,
line centring, averaging) apply to Siemens data too; there is no second copy of them.

What the conversion maps (Siemens MDH -> ISMRMRD acquisition header):

- flags (ISMRMRD 1-based bits): ``NOISEADJSCAN`` -> noise measurement (19);
  ``PATREFSCAN`` -> parallel calibration (20); ``PATREFANDIMASCAN`` ->
  calibration-and-imaging (21); ``REFLECT`` -> reverse (22); ``PHASCOR`` -> phase
  correction (24); ``HPFEEDBACK`` -> 26; ``RETRO_DUMMYSCAN`` -> dummy scan (27);
  ``RTFEEDBACK`` -> 28; ``REFPHASESTABSCAN`` / ``PHASESTABSCAN`` -> 30 / 31;
  ``FIRSTSCANINSLICE`` / ``LASTSCANINSLICE`` / ``LASTSCANINMEAS`` -> first/last in
  slice, last in measurement. ``SYNCDATA`` (physiology, trajectory blocks) and
  ``ACQEND`` are not acquisitions and are left out.
- counters: ``Lin`` -> ``kspace_encode_step_1``, ``Par`` -> ``kspace_encode_step_2``,
  ``Sli`` -> ``slice``, ``Eco`` -> ``contrast``, ``Phs`` -> ``phase``, ``Rep`` ->
  ``repetition``, ``Set`` -> ``set``, ``Ave`` -> ``average``, ``Seg`` -> ``segment``.
- ``SamplesInScan`` -> ``number_of_samples``, ``CenterCol`` -> ``center_sample``,
  ``CutOff.Pre/Post`` -> ``discard_pre/post``, ``UsedChannels`` -> ``active_channels``,
  ``alDwellTime[0]`` (ns, the ADC dwell of the oversampled readout) -> ``sample_time_us``.
- geometry: ``SliceData.SlicePos`` (Sag, Cor, Tra; mm) -> ``position``; the slice
  quaternion ``(w, x, y, z)`` as a rotation matrix whose columns are the phase,
  readout and slice directions (the Siemens PRS convention that ``siemens_to_ismrmrd``
  uses) -> ``phase_dir``, ``read_dir``, ``slice_dir``.

The XML header comes from the measurement's protocol (``MeasYaps`` / ``Meas``):
encodedSpace x = ``iNoOfFourierColumns`` (the readout with its oversampling,
``flReadoutOSFactor``), y = ``iPEFTLength``, reconSpace = ``NImageCols`` x ``NImageLins``,
FOVs from ``sSliceArray.asSlice[0]``, encodingLimits from the counters with the
k-space centre line ``CenterLin`` (so partial-Fourier lines land in place), TE / TR / TI
(us -> ms; TI only with an inversion prepared, ``sPrepPulses.ucInversion`` != 4 = off),
flip angle, field strength, the acceleration factors of ``sPat``.

Noise: the ``NOISEADJSCAN`` blocks of the chosen measurement, and (by default) those of
the file's other measurements with the same channel count (VD/VE scanners keep an imaging
scan's noise scan in a measurement of its own), become noise acquisitions, each with
the dwell time of its own measurement.

Limits: Cartesian 2D only (the ISMRMRD reader's rule for 3D applies); radial / spiral
twix files carry no trajectory and are refused; EPI lines are read with their
alternating readout direction reversed, but neither EPI ghost (phase) correction nor
ramp-sampling regridding is applied (a warning says so).
"""

from __future__ import annotations

import contextlib
import io
import math
import os
import tempfile
import warnings
from typing import Any

import numpy as np

from mridip.data import RawData
from mridip.errors import DependencyError, InputFileError

__all__ = ["twix_to_ismrmrd", "read_twix", "is_twix", "twix_version"]

# Siemens MDH flag name -> ISMRMRD flag (1-based bit numbers, as ismrmrd.constants)
_FLAG_MAP = {
    "NOISEADJSCAN": 19,
    "PATREFSCAN": 20,
    "PATREFANDIMASCAN": 21,
    "REFLECT": 22,
    "PHASCOR": 24,
    "HPFEEDBACK": 26,
    "RETRO_DUMMYSCAN": 27,
    "RTFEEDBACK": 28,
    "REFPHASESTABSCAN": 30,
    "PHASESTABSCAN": 31,
    "FIRSTSCANINSLICE": 7,
    "LASTSCANINSLICE": 8,
    "LASTSCANINMEAS": 25,
}
_NOT_IMAGE = ("NOISEADJSCAN", "PHASCOR", "RTFEEDBACK", "HPFEEDBACK", "REFPHASESTABSCAN",
              "PHASESTABSCAN", "RETRO_DUMMYSCAN")
_COUNTERS = {  # Siemens Counter field -> ISMRMRD idx field
    "Lin": "kspace_encode_step_1",
    "Par": "kspace_encode_step_2",
    "Sli": "slice",
    "Eco": "contrast",
    "Phs": "phase",
    "Rep": "repetition",
    "Set": "set",
    "Ave": "average",
    "Seg": "segment",
}
_LIMIT_NAMES = {  # ISMRMRD idx field -> encodingLimits element
    "kspace_encode_step_1": "kspace_encoding_step_1",
    "kspace_encode_step_2": "kspace_encoding_step_2",
    "slice": "slice",
    "contrast": "contrast",
    "phase": "phase",
    "repetition": "repetition",
    "set": "set",
    "average": "average",
    "segment": "segment",
}
_TRAJECTORIES = {1: "cartesian", 2: "radial", 4: "spiral", 8: "propeller"}  # sKSpace.ucTrajectory
_INVERSION_OFF = 4  # sPrepPulses.ucInversion: 1 slice-selective, 2 non-selective, 4 off


def _twixtools():
    try:
        import twixtools
    except ImportError as exc:  # pragma: no cover - installed with mridip
        raise DependencyError(
            "reading Siemens twix .dat files needs the `twixtools` package: pip install 'twixtools>=0.24'"
        ) from exc
    return twixtools


# ============================================================================ detection
def twix_version(path: str | os.PathLike) -> str | None:
    """``"VD/VE"``, ``"VB"`` or ``None`` (not a twix file), from the first bytes only.

    VD/VE files open with a multi-raid header (``uint32`` 0, then the number of
    measurements, 1 to 64; entry 0's offset after it); VB files with the length of the
    measurement header. Either way a measurement header starts with its length, the
    number of header buffers, and the buffer name ``Config``.
    """
    path = os.fspath(path)
    try:
        size = os.path.getsize(path)
        with open(path, "rb") as fh:
            head = fh.read(32)
            if len(head) < 32:
                return None
            first, second = np.frombuffer(head[:8], dtype="<u4")
            if first == 0 and 1 <= second <= 64:
                off = int(np.frombuffer(head[16:24], dtype="<u8")[0])  # entry 0: measId, fileId, off_
                version, start = "VD/VE", off
            elif 8 < first < size:
                version, start = "VB", 0
            else:
                return None
            if not 0 <= start < size - 16:
                return None
            fh.seek(start)
            meas = fh.read(16)
    except OSError:
        return None
    if len(meas) < 16 or not 1 <= int(np.frombuffer(meas[4:8], dtype="<u4")[0]) <= 64:
        return None
    return version if meas[8:14] == b"Config" else None


def is_twix(path: str | os.PathLike) -> bool:
    """True when ``path`` is a Siemens twix raw file (VB or VD/VE), judged by content."""
    return twix_version(path) is not None


# ============================================================================ reading
def _index(path: str, scans: list, measurement: int) -> int:
    try:
        return range(len(scans))[measurement]
    except IndexError:
        raise InputFileError(
            f"{path!r} holds {len(scans)} measurement(s); measurement={measurement} does not exist "
            f"(use 0 to {len(scans) - 1}, or -1 for the last, the imaging scan)"
        ) from None


def _load_all(path: str) -> tuple[list, bool, int]:
    """twixtools' scan dicts of every measurement, the version flag and the file size.

    Raises InputFileError for a missing, non-twix or truncated file: twixtools either
    raises, or on a truncated file silently returns blocks read past the end (empty
    data) without the closing ACQEND block; both are caught here.
    """
    if not os.path.exists(path):
        raise InputFileError(f"input file not found: {path!r}; check the path (and the working folder)")
    version = twix_version(path)
    if version is None:
        raise InputFileError(
            f"{path!r} is not a Siemens twix .dat file (its first bytes are neither a VD/VE "
            "multi-raid header nor a VB measurement header): give the raw .dat as exported "
            "from the scanner (twix)"
        )
    tw = _twixtools()
    size = os.path.getsize(path)
    out = io.StringIO()
    try:
        with contextlib.redirect_stdout(out):  # twixtools prints its warnings
            scans = tw.read_twix(path, verbose=False, keep_acqend=True, keep_syncdata=True,
                                 parse_pmu=False, parse_geometry=False)
    except Exception as exc:  # twixtools raises IndexError / ValueError / struct errors
        raise InputFileError(
            f"reading {path!r} with twixtools failed ({type(exc).__name__}: {exc}): the twix file "
            f"is truncated or corrupt ({size} bytes); copy it from the scanner again"
        ) from exc
    scans = [s for s in scans if isinstance(s, dict) and "mdb" in s]
    if not scans:
        raise InputFileError(f"{path!r} holds no twix measurement: the file is truncated or corrupt")
    for scan in scans:
        _check_complete(path, scan, size, out.getvalue())
    return scans, version == "VD/VE", size


def _check_complete(path: str, scan: dict, size: int, log: str) -> None:
    truncated = (
        f"{path!r} is truncated ({size} bytes): %s. Copy the complete .dat file from the "
        "scanner again (twix files end with an ACQEND block)"
    )
    raid = scan.get("raidfile_hdr")
    if raid is not None:
        end = int(raid["off_"]) + int(raid["len_"])
        if end > size:
            raise InputFileError(truncated % f"its multi-raid header says the measurement ends at byte {end}")
    if "Error parsing twix header" in log or "hdr" not in scan or "MeasYaps" not in scan["hdr"]:
        raise InputFileError(truncated % "the measurement's protocol header cannot be parsed")
    mdbs = scan["mdb"]
    if not mdbs or not (mdbs[-1].is_flag_set("ACQEND") or _acqend_after(path, mdbs[-1], size)):
        raise InputFileError(truncated % "the closing ACQEND block is missing")
    for i, m in enumerate(mdbs):
        if m.is_flag_set("ACQEND"):
            if i != len(mdbs) - 1:
                raise InputFileError(truncated % "an ACQEND block stands before the end of the data")
            continue
        if m.mem_pos is not None and int(m.mem_pos) + int(m.dma_len) > size:
            raise InputFileError(truncated % f"a data block at byte {int(m.mem_pos)} runs past the end")


def _acqend_after(path: str, last, size: int) -> bool:
    """Whether an ACQEND line header follows block ``last`` at the very end of the file.

    twixtools stops reading 128 bytes before the end, so a VB file whose last block is a
    bare 128-byte ACQEND header is complete although twixtools does not list it.
    EvalInfoMask (bit 0 = ACQEND) sits at byte 20 of a VB line header, 40 of a VD/VE one.
    """
    if last.mem_pos is None:
        return False
    pos = int(last.mem_pos) + int(last.dma_len)
    offset, length = (40, 192) if last.version_is_ve else (20, 128)
    if size - pos < length:
        return False
    with open(path, "rb") as fh:
        fh.seek(pos + offset)
        mask = np.frombuffer(fh.read(8), dtype="<u8")
    return len(mask) == 1 and bool(int(mask[0]) & 1)


def _get(d: dict, *keys, default=None):
    for k in keys:
        if not isinstance(d, dict) or k not in d:
            return default
        d = d[k]
    return default if d in ("", None) else d


def _num(v, default=None):
    try:
        out = float(v)
    except (TypeError, ValueError):
        return default
    return out if math.isfinite(out) else default


def _rotation(quat) -> np.ndarray:
    """Rotation matrix of a unit quaternion ``(w, x, y, z)`` (scalar first, as in the MDH).

    Columns are the phase, readout and slice directions in the patient coordinate system
    (Sag, Cor, Tra). Standard formula (e.g. Shoemake, SIGGRAPH 1985).
    """
    w, x, y, z = (float(q) for q in quat)
    n = math.sqrt(w * w + x * x + y * y + z * z)
    if n < 1e-6:
        return np.eye(3)
    w, x, y, z = w / n, x / n, y / n, z / n
    return np.array([
        [1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
        [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
        [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)],
    ])


def _acq_mdbs(scan: dict) -> list:
    """Measurement blocks that are acquisitions (no SYNCDATA, no ACQEND)."""
    return [m for m in scan["mdb"] if not (m.is_flag_set("SYNCDATA") or m.is_flag_set("ACQEND"))]


def _is_image(m) -> bool:
    if any(m.is_flag_set(f) for f in _NOT_IMAGE):
        return False
    return not (m.is_flag_set("PATREFSCAN") and not m.is_flag_set("PATREFANDIMASCAN"))


def _facts(scan: dict, path: str) -> dict[str, Any]:
    """What the protocol says (matrix sizes, FOV, times, system), with fallbacks to the data."""
    hdr = scan["hdr"]
    yaps, meas, dicom = hdr.get("MeasYaps", {}), hdr.get("Meas", {}), hdr.get("Dicom", {})
    mdbs = _acq_mdbs(scan)
    image = [m for m in mdbs if _is_image(m)]
    if not image:
        return {"image": 0}
    first = image[0]
    os_factor = _num(_get(meas, "flReadoutOSFactor"), None) or _num(_get(meas, "ReadoutOSFactor"), 2.0)
    base = int(_num(_get(yaps, "sKSpace", "lBaseResolution"), 0) or 0)
    ex = int(_num(_get(meas, "iNoOfFourierColumns"), 0) or 0) or int(round(base * os_factor)) \
        or int(max(m.mdh.SamplesInScan for m in image))
    rx = int(_num(_get(meas, "NImageCols"), 0) or 0) or base or int(round(ex / os_factor))
    lines = [int(m.mdh.Counter.Lin) for m in image]
    ey = int(_num(_get(meas, "iPEFTLength"), 0) or 0) \
        or int(_num(_get(yaps, "sKSpace", "lPhaseEncodingLines"), 0) or 0) or (max(lines) + 1)
    ry = int(_num(_get(meas, "NImageLins"), 0) or 0) or ey
    ez = int(_num(_get(meas, "iNoOfFourierPartitions"), 0) or 0) or 1
    dim3 = int(_num(_get(yaps, "sKSpace", "ucDimension"), 2) or 2) == 4
    if not dim3:
        ez = 1
    sl = _get(yaps, "sSliceArray", "asSlice", default=[{}])
    sl0 = sl[0] if isinstance(sl, list) and sl and isinstance(sl[0], dict) else {}
    ro_fov = _num(_get(sl0, "dReadoutFOV"), 0.0)
    pe_fov = _num(_get(sl0, "dPhaseFOV"), 0.0)
    thick = _num(_get(sl0, "dThickness"), 0.0)
    n_contrasts = int(_num(_get(yaps, "lContrasts"), 1) or 1)
    te = [v / 1000.0 for v in (_get(yaps, "alTE", default=[]) or [])[:n_contrasts] if _num(v)]
    tr = [v / 1000.0 for v in (_get(yaps, "alTR", default=[]) or [])[:1] if _num(v)]
    ti = []
    if int(_num(_get(yaps, "sPrepPulses", "ucInversion"), _INVERSION_OFF)) != _INVERSION_OFF:
        ti = [v / 1000.0 for v in (_get(yaps, "alTI", default=[]) or [])[:1] if _num(v)]
    fa = [float(v) for v in (_get(yaps, "adFlipAngleDegree", default=[]) or [])[:1] if _num(v) is not None]
    dwell_us = _dwell_us(scan)
    traj_code = int(_num(_get(yaps, "sKSpace", "ucTrajectory"), 1) or 1)
    regrid = _get(meas, "alRegridMode", default=[1])
    regrid_mode = int(_num(regrid[0] if isinstance(regrid, list) else regrid, 1) or 1)
    return dict(
        image=len(image),
        coils=int(first.mdh.UsedChannels),
        ex=ex, ey=ey, ez=ez, rx=rx, ry=ry, os=float(ex / rx) if rx else float(os_factor),
        fov=(float(ro_fov or 0.0), float(pe_fov or 0.0), float(thick or 0.0)),
        te=te, tr=tr, ti=ti, fa=fa, dwell_us=dwell_us,
        field=_num(_get(dicom, "flMagneticFieldStrength"), None) or _num(_get(meas, "flMagneticFieldStrength"), None),
        frequency=int(_num(_get(dicom, "lFrequency"), 0) or 0),
        vendor=str(_get(dicom, "Manufacturer", default="SIEMENS")),
        model=str(_get(dicom, "ManufacturersModelName", default="")),
        protocol=str(_get(yaps, "tProtocolName", default="")),
        sequence=str(_get(yaps, "tSequenceFileName", default="")),
        position=str(_get(dicom, "tPatientPosition", default="") or _get(meas, "tPatientPosition", default="")),
        accel=(int(_num(_get(yaps, "sPat", "lAccelFactPE"), 1) or 1),
               int(_num(_get(yaps, "sPat", "lAccelFact3D"), 1) or 1)),
        trajectory=_TRAJECTORIES.get(traj_code, "other"),
        center_line=int(first.mdh.CenterLin),
        center_par=int(first.mdh.CenterPar),
        reflect=any(m.is_flag_set("REFLECT") for m in image),
        echo_train=int(_num(_get(meas, "EchoTrainLength"), 1) or 1),
        ramp_sampling=regrid_mode > 1,
        ramp_us=_num((_get(meas, "alRegridRampupTime", default=[0]) or [0])[0], 0.0),
        adc_us=_num((_get(meas, "aflRegridADCDuration", default=[0]) or [0])[0], 0.0),
    )


def _dwell_us(scan: dict) -> float:
    """ADC dwell time in us of a measurement (``sRXSPEC.alDwellTime[0]``, ns in the protocol)."""
    hdr = scan.get("hdr", {})
    dwell = _get(hdr.get("MeasYaps", {}), "sRXSPEC", "alDwellTime", default=None) \
        or _get(hdr.get("Meas", {}), "alDwellTime", default=None) or [0]
    return (_num(dwell[0], 0.0) or 0.0) / 1000.0


def _limits(mdbs: list, f: dict) -> dict[str, tuple[int, int, int]]:
    lim: dict[str, tuple[int, int, int]] = {"kspace_encoding_step_0": (0, f["ex"] - 1, f["ex"] // 2)}
    data = [m for m in mdbs if not m.is_flag_set("NOISEADJSCAN")] or mdbs
    for counter, field in _COUNTERS.items():
        vals = [int(getattr(m.mdh.Counter, counter)) for m in data]
        lo, hi = (min(vals), max(vals)) if vals else (0, 0)
        centre = 0
        if counter == "Lin":
            lo, hi = 0, max(hi, f["ey"] - 1)
            centre = f["center_line"]
        elif counter == "Par":
            lo, hi = 0, max(hi, f["ez"] - 1)
            centre = f["center_par"] if f["ez"] > 1 else 0
        lim[_LIMIT_NAMES[field]] = (lo, hi, centre)
    return lim


def _header_xml(f: dict, lim: dict, calibration: str | None) -> str:
    import ismrmrd.xsd as x

    ro, pe, th = f["fov"]

    def space(m, fov):
        return x.encodingSpaceType(
            matrixSize=x.matrixSizeType(x=int(m[0]), y=int(m[1]), z=int(m[2])),
            fieldOfView_mm=x.fieldOfViewMm(x=float(fov[0]), y=float(fov[1]), z=float(fov[2])),
        )

    # encoded FOV: the readout FOV times its oversampling, the phase FOV times the phase
    # oversampling implied by encoded y > recon y
    enc_fov = (ro * f["ex"] / max(f["rx"], 1), pe * f["ey"] / max(f["ry"], 1), th)
    enc = x.encodingType(
        encodedSpace=space((f["ex"], f["ey"], f["ez"]), enc_fov),
        reconSpace=space((f["rx"], f["ry"], f["ez"]), (ro, pe, th)),
        encodingLimits=x.encodingLimitsType(**{
            name: x.limitType(minimum=int(a), maximum=int(b), center=int(c)) for name, (a, b, c) in lim.items()
        }),
        trajectory=x.trajectoryType(
            f["trajectory"] if f["trajectory"] in ("cartesian", "radial", "spiral") else "other"),
    )
    if f["echo_train"] > 1:
        enc.echoTrainLength = int(f["echo_train"])
    if f["accel"] != (1, 1) or calibration:
        modes = {"embedded": x.calibrationModeType.EMBEDDED, "separate": x.calibrationModeType.SEPARATE}
        enc.parallelImaging = x.parallelImagingType(
            accelerationFactor=x.accelerationFactorType(
                kspace_encoding_step_1=int(f["accel"][0]), kspace_encoding_step_2=int(f["accel"][1])),
            calibrationMode=modes.get(calibration),
        )
    seq = x.sequenceParametersType(TR=f["tr"], TE=f["te"], TI=f["ti"], flipAngle_deg=f["fa"])
    if f["sequence"]:
        seq.sequence_type = f["sequence"].split("\\")[-1]
    pos = None
    if f["position"] in {p.value for p in x.patientPositionType}:
        pos = x.patientPositionType(f["position"])
    hdr = x.ismrmrdHeader(
        measurementInformation=x.measurementInformationType(
            patientPosition=pos, protocolName=f["protocol"] or None,
            sequenceName=f["sequence"] or None,
        ),
        experimentalConditions=x.experimentalConditionsType(H1resonanceFrequency_Hz=int(f["frequency"])),
        acquisitionSystemInformation=x.acquisitionSystemInformationType(
            systemVendor=f["vendor"] or None, systemModel=f["model"] or None,
            systemFieldStrength_T=f["field"], receiverChannels=int(f["coils"]),
        ),
        encoding=[enc],
        sequenceParameters=seq,
    )
    return x.ToXML(hdr)


def _acquisition(m, dwell_us: float, path: str):
    import ismrmrd

    data = np.asarray(m.data)
    C, N = int(m.mdh.UsedChannels), int(m.mdh.SamplesInScan)
    if data.shape != (C, N):
        raise InputFileError(
            f"{path!r} is truncated or corrupt: the block at byte {m.mem_pos} (scan counter "
            f"{int(m.mdh.ScanCounter)}) holds data of shape {data.shape}, its header says "
            f"{C} channels x {N} samples; copy the file again"
        )
    acq = ismrmrd.Acquisition.from_array(np.ascontiguousarray(data, dtype=np.complex64))
    for name, bit in _FLAG_MAP.items():
        if m.is_flag_set(name):
            acq.set_flag(bit)
    for counter, field in _COUNTERS.items():
        setattr(acq.idx, field, int(getattr(m.mdh.Counter, counter)))
    acq.center_sample = int(m.mdh.CenterCol)
    acq.discard_pre = int(m.mdh.CutOff.Pre)
    acq.discard_post = int(m.mdh.CutOff.Post)
    acq.scan_counter = int(m.mdh.ScanCounter)
    acq.measurement_uid = int(m.mdh.MeasUID) & 0xFFFFFFFF
    acq.acquisition_time_stamp = int(m.mdh.TimeStamp)
    acq.physiology_time_stamp[0] = int(m.mdh.PMUTimeStamp)
    acq.sample_time_us = float(dwell_us)
    sd = m.mdh.SliceData
    pos = sd.SlicePos
    acq.position[:] = (float(pos.Sag), float(pos.Cor), float(pos.Tra))
    R = _rotation(sd.Quaternion)
    acq.phase_dir[:] = R[:, 0]
    acq.read_dir[:] = R[:, 1]
    acq.slice_dir[:] = R[:, 2]
    return acq


def _warn_limits(f: dict, path: str, stacklevel: int) -> None:
    if f["reflect"]:
        msg = (f"{path}: EPI readout (echo train {f['echo_train']}, lines alternate in readout direction): "
               "reversed lines are flipped, but EPI ghost (Nyquist phase) correction is not applied "
               "(the phase-correction lines are skipped)")
        if f["ramp_sampling"]:
            msg += (f", and the ramp-sampled readout (ramps of {f['ramp_us']:g} us in a {f['adc_us']:g} us ADC) "
                    "is not regridded")
        warnings.warn(msg + ": expect N/2 ghosts and blurring along the readout", stacklevel=stacklevel)


def twix_to_ismrmrd(
    dat_path: str | os.PathLike,
    out_h5: str | os.PathLike,
    measurement: int = -1,
    *,
    noise_from_other_measurements: bool = True,
) -> str:
    """Convert a Siemens twix ``.dat`` file (one measurement) to an ISMRMRD ``.h5`` file.

    Parameters
    ----------
    dat_path : str or PathLike
        Siemens raw file (VB or VD/VE).
    out_h5 : str or PathLike
        ISMRMRD file to write (replaced if it exists; nothing is written when the input
        is unusable).
    measurement : int
        Which measurement of a VD/VE multi-raid file (``-1``: the last, the imaging scan;
        earlier ones are adjustment scans). VB files hold one.
    noise_from_other_measurements : bool
        Also write the noise-adjust blocks (``NOISEADJSCAN``) of the file's other
        measurements that have the same channel count, first, as noise acquisitions with
        their own measurement's dwell time (VD/VE scanners keep the noise scan of an
        imaging scan in a measurement of its own).

    Returns
    -------
    str
        ``out_h5``. Group ``/dataset``: an ismrmrdHeader (see the module docstring for the
        mapping) and one acquisition per readout, samples ``(C, SamplesInScan)`` complex64
        as in the file (oversampled readout, reversed lines not yet flipped).

    Raises
    ------
    InputFileError
        Missing, non-twix, truncated or corrupt file; no image data; a non-Cartesian
        (radial, spiral, PROPELLER) acquisition, whose twix file has no trajectory.
    """
    import ismrmrd

    path = os.fspath(dat_path)
    out = os.fspath(out_h5)
    scans, _, _ = _load_all(path)
    index = _index(path, scans, measurement)
    scan = scans[index]
    f = _facts(scan, path)
    if not f["image"]:
        raise InputFileError(
            f"{path!r} (measurement {measurement}) holds no image data (only noise, phase-correction "
            "or feedback scans): choose the imaging measurement (measurement=-1 is the last)"
        )
    if f["trajectory"] != "cartesian":
        raise InputFileError(
            f"{path!r} is a {f['trajectory']} acquisition (sKSpace.ucTrajectory); twix files carry no "
            "k-space trajectory, which mridip needs: compute the trajectory of the sequence and pass "
            "the data with mridip.io.from_arrays(..., trajectory=...) or as BART ksp + traj .cfl"
        )
    _warn_limits(f, path, stacklevel=3)
    mdbs = _acq_mdbs(scan)
    blocks = []  # (block, dwell in us): other measurements' noise scans first, then this one
    if noise_from_other_measurements:
        for i, other in enumerate(scans):
            if i == index:
                continue
            d = _dwell_us(other)
            blocks += [(m, d) for m in _acq_mdbs(other)
                       if m.is_flag_set("NOISEADJSCAN") and int(m.mdh.UsedChannels) == f["coils"]]
    blocks += [(m, f["dwell_us"]) for m in mdbs]
    calibration = None
    if any(m.is_flag_set("PATREFANDIMASCAN") for m in mdbs):
        calibration = "embedded"
    elif any(m.is_flag_set("PATREFSCAN") for m in mdbs):
        calibration = "separate"
    xml = _header_xml(f, _limits(mdbs, f), calibration)
    os.makedirs(os.path.dirname(os.path.abspath(out)) or ".", exist_ok=True)
    tmp = out + ".part"
    if os.path.exists(tmp):
        os.remove(tmp)
    ds = ismrmrd.Dataset(tmp, "dataset", create_if_needed=True)
    try:
        ds.write_xml_header(xml)
        for m, dwell in blocks:  # one block in memory at a time; a short block raises here
            ds.append_acquisition(_acquisition(m, dwell, path))
    except BaseException:
        ds.close()
        os.remove(tmp)
        raise
    ds.close()
    os.replace(tmp, out)  # a complete file or none
    return out


def read_twix(
    path: str | os.PathLike,
    measurement: int = -1,
    *,
    noise_from_other_measurements: bool = True,
    **read_ismrmrd_kwargs,
) -> RawData:
    """Read a Siemens twix ``.dat`` file into :class:`~mridip.data.RawData`.

    The file is converted with :func:`twix_to_ismrmrd` into a temporary directory and
    read with :func:`mridip.io.ismrmrd.read_ismrmrd`, so the ISMRMRD rules apply.

    Parameters
    ----------
    path : str or PathLike
        Siemens raw file (VB or VD/VE).
    measurement : int
        Measurement of a multi-raid file (``-1``: the last).
    noise_from_other_measurements : bool
        Use the noise scans of the file's other measurements too (see :func:`twix_to_ismrmrd`).
    **read_ismrmrd_kwargs
        Passed to :func:`~mridip.io.ismrmrd.read_ismrmrd` (``spokes_per_frame``,
        ``calibration``, ...).

    Returns
    -------
    RawData
        Cartesian ``(S, T, C, Ky, Kx)`` with mask ``(S, T, Ky, Kx)``, readout oversampling
        cropped; ``format = "twix"``, ``source`` = the ``.dat`` path;
        ``header.extra["twix"]`` with the sequence, protocol and measurement.

    Raises
    ------
    InputFileError
        As :func:`twix_to_ismrmrd` and :func:`~mridip.io.ismrmrd.read_ismrmrd`.
    """
    from mridip.io.ismrmrd import read_ismrmrd

    path = os.fspath(path)
    with tempfile.TemporaryDirectory(prefix="mridip_twix_") as tmp:
        h5 = os.path.join(tmp, "twix.h5")
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            twix_to_ismrmrd(path, h5, measurement, noise_from_other_measurements=noise_from_other_measurements)
            raw = read_ismrmrd(h5, **read_ismrmrd_kwargs)
        for w in caught:  # re-issue, naming the .dat rather than the temporary file
            warnings.warn(str(w.message).replace(h5, path), w.category, stacklevel=2)
    raw.format = "twix"
    raw.source = path
    raw.header.extra["twix"] = {"version": twix_version(path), "measurement": int(measurement)}
    return raw


def describe_twix(path: str | os.PathLike) -> str:
    """The ``mridip info`` text of a twix file: the protocol and the blocks' flags and counters.

    Reads the headers only (no samples).
    """
    from collections import Counter

    path = os.fspath(path)
    version = twix_version(path)
    scans, _, _ = _load_all(path)
    scan = scans[-1]
    f = _facts(scan, path)
    mdbs = _acq_mdbs(scan)
    lines = [f"file:             {path}", f"format:           Siemens twix ({version})"]
    if len(scans) > 1:
        n_other = sum(1 for o in scans[:-1] for m in _acq_mdbs(o) if m.is_flag_set("NOISEADJSCAN"))
        lines.append(f"measurements:     {len(scans)} (the last is read; {n_other} noise blocks in the others)")
    if f.get("sequence"):
        lines.append(f"sequence:         {f['sequence'].split(chr(92))[-1]} (protocol {f['protocol']})")
    lines.append(f"trajectory:       {f.get('trajectory', 'cartesian')}")
    if not f["image"]:
        lines.append(f"blocks:           {len(mdbs)} (no image data)")
        return "\n".join(lines)
    image = [m for m in mdbs if _is_image(m)]
    lines.append(f"encoded matrix:   {f['ex']} x {f['ey']}" + (f" x {f['ez']}" if f["ez"] > 1 else "")
                 + " (x readout, y phase)")
    lines.append(f"recon matrix:     {f['rx']} x {f['ry']} (x readout, y phase)")
    lines.append(f"acquisitions:     {len(mdbs)} ({len(image)} image data)")
    lines.append(f"coils:            {f['coils']}")
    sl = {int(m.mdh.Counter.Sli) for m in image}
    lines.append(f"slices:           {len(sl)}")
    lin = {int(m.mdh.Counter.Lin) for m in image}
    lines.append(f"lines:            {len(lin)} of {f['ey']} (k-space centre line {f['center_line']})")
    counts = Counter()
    for m in mdbs:
        for name in ("NOISEADJSCAN", "PATREFSCAN", "PATREFANDIMASCAN", "PHASCOR", "RTFEEDBACK", "REFLECT"):
            if m.is_flag_set(name):
                counts[name] += 1
    lines.append(f"noise scans:      {counts['NOISEADJSCAN']}"
                 + ("" if counts["NOISEADJSCAN"] else " (no prewhitening possible)"))
    n_cal = sum(1 for m in mdbs if m.is_flag_set("PATREFSCAN") or m.is_flag_set("PATREFANDIMASCAN"))
    lines.append(f"calibration lines: {n_cal} (PATREFSCAN / PATREFANDIMASCAN)")
    if counts["PHASCOR"] or counts["RTFEEDBACK"]:
        lines.append(f"skipped:          {counts['PHASCOR']} phase correction, {counts['RTFEEDBACK']} RT feedback")
    if counts["REFLECT"]:
        lines.append(f"reversed lines:   {counts['REFLECT']} (EPI: no ghost correction is applied)")
    lines.append(f"readout oversampling: {f['os']:g} (cropped on reading)")
    if f["field"]:
        lines.append(f"field strength:   {f['field']:g} T")
    for name, vals in (("TE", f["te"]), ("TR", f["tr"]), ("TI", f["ti"])):
        if vals:
            lines.append(f"{name}:{' ' * (16 - len(name))}" + ", ".join(f"{v:g}" for v in vals) + " ms")
    if f["fa"]:
        lines.append("flip angle:       " + ", ".join(f"{v:g}" for v in f["fa"]) + " deg")
    if any(f["fov"]):
        lines.append("FOV (recon):      " + " x ".join(f"{v:g}" for v in f["fov"]) + " mm")
    if f["model"]:
        lines.append(f"system:           {f['vendor']} {f['model']}")
    return "\n".join(lines)
