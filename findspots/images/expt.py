"""DIALS experiment files: read ExperimentList JSON (``models.expt``, ``experiments.json``) and the old
``datablock.json``; write an ExperimentList (``imported.expt`` style) for a list of sequences.

Reading (SPEC §6.3): each imageset becomes one ImageSequence with the models of the experiments that use
it, which override the image headers, as in DIALS. Image numbers are the union of those experiments'
scan ranges (a still sequence from dials.import has one single-image scan per image). Templates,
image lists and HDF5 masters (``single_file_indices``) are resolved relative to the JSON file's folder,
then the current folder. A detector hierarchy is composed into lab-frame panels. Trusted ranges are
inclusive; a pixel-array panel whose range starts at -1 was written by dxtbx before 3.12 with exclusive
ends and is read as starting at 0. External masks are read by ``mask_files`` (.npy or HDF5/NeXus, as
``spotfinder.lookup.mask``; pickles are refused, never unpickled). The reader, the format's own extras
(NeXus pixel mask, goniometer shadow when ``dynamic_shadowing`` is not False) and the format's name come
from the image files, through the format registry.

Writing follows current dxtbx's field names with the legacy scan form (``oscillation`` [start, width]),
which DIALS 3.x reads, absolute paths, and a flat hierarchy (panels in the lab frame under an identity
root). Trusted ranges are written as findspots uses them (inclusive, the current dxtbx convention).
"""

from __future__ import annotations

import json
import logging
import os
import re
import uuid
from dataclasses import replace
from pathlib import Path

import numpy as np

from findspots.errors import ImageError
from findspots.images.fileio import peek
from findspots.images.formats import SweepFormat, detect
from findspots.images.mask_files import read_mask_file
from findspots.images.models import Beam, Detector, Goniometer, ImageSequence, Panel, Scan
from findspots.images.nexus import NexusReader
from findspots.images.sweeps import group_images

log = logging.getLogger("findspots")

_SHADOW_OFF = (False, "False", "false", 0)


# ----------------------------------------------------------------------------------- models in


def _frame(d: dict) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return (
        np.asarray(d["fast_axis"], dtype=np.float64),
        np.asarray(d["slow_axis"], dtype=np.float64),
        np.asarray(d["origin"], dtype=np.float64),
    )


def _compose(parent: tuple | None, local: tuple) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Lab frame of a node from its parent's lab frame and its own local frame (dxtbx hierarchy)."""
    if parent is None:
        return local
    pf, ps, po = parent
    pf, ps = pf / np.linalg.norm(pf), ps / np.linalg.norm(ps)
    rot = np.column_stack([pf, ps, np.cross(pf, ps)])
    lf, ls, lo = local
    return rot @ lf, rot @ ls, po + rot @ lo


def _panel_frames(det: dict) -> dict[int, tuple]:
    """Lab frame of every panel, walking the hierarchy (panels not in it keep their own frame)."""
    frames: dict[int, tuple] = {}

    def walk(node: dict, parent: tuple | None) -> None:
        if "panel" in node:
            i = int(node["panel"])
            frames[i] = _compose(parent, _frame(det["panels"][i]))
            return
        here = _compose(parent, _frame(node))
        for child in node.get("children", []):
            walk(child, here)

    if "hierarchy" in det:
        walk(det["hierarchy"], None)
    return frames


def _trusted(p: dict) -> tuple[float, float]:
    lo, hi = (float(v) for v in p.get("trusted_range", (0.0, 0.0)))
    if lo == -1.0 and p.get("type", "SENSOR_PAD") == "SENSOR_PAD":
        log.debug("trusted_range (-1, %s) from dxtbx < 3.12 (exclusive ends) read as (0, %s)", hi, hi)
        lo = 0.0
    elif (lo + 0.5).is_integer() and (hi - 0.5).is_integer() and hi > lo:
        lo, hi = lo + 0.5, hi - 0.5  # written by findspots for every DIALS (_written_trusted_range)
    return lo, hi


def detector_from_dict(det: dict) -> Detector:
    """Lab-frame panels of a dxtbx detector dict."""
    frames = _panel_frames(det)
    panels = []
    for i, p in enumerate(det["panels"]):
        fast, slow, origin = frames.get(i, _frame(p))
        panels.append(
            Panel(
                image_size=tuple(p["image_size"]),
                pixel_size=tuple(p["pixel_size"]),
                trusted_range=_trusted(p),
                origin=origin,
                fast_axis=fast,
                slow_axis=slow,
                name=p.get("name", "Panel"),
                type=p.get("type", "SENSOR_PAD"),
                gain=float(p.get("gain", 1.0)),
                pedestal=float(p.get("pedestal", 0.0)),
                mask_rects=[tuple(r) for r in p.get("mask", [])],
                thickness=float(p.get("thickness", 0.0)),
                material=p.get("material", ""),
                mu=p.get("mu"),
                raw_offset=tuple(p.get("raw_image_offset", (0, 0))),
                identifier=p.get("identifier", ""),
            )
        )
    return Detector(panels)


def beam_from_dict(b: dict) -> Beam:
    """Monochromatic beam (direction points to the source)."""
    if "wavelength" not in b:
        raise ImageError("beam model has no wavelength (only monochromatic beams are supported)")
    return Beam(
        b["wavelength"],
        b.get("direction", (0.0, 0.0, 1.0)),
        polarization_normal=b.get("polarization_normal", (0.0, 1.0, 0.0)),
        polarization_fraction=b.get("polarization_fraction", 0.999),
        flux=b.get("flux", 0.0),
    )


def goniometer_from_dict(g: dict | None) -> Goniometer | None:
    """Single- or multi-axis goniometer; the lab rotation axis includes the setting rotation."""
    if g is None:
        return None
    if "axes" in g:
        return Goniometer.multi_axis(g["axes"], g["angles"], g.get("names", []), int(g.get("scan_axis", 0)))
    setting = np.asarray(g.get("setting_rotation", np.identity(3).ravel()), dtype=np.float64).reshape(3, 3)
    return Goniometer(setting @ np.asarray(g["rotation_axis"], dtype=np.float64))


def scan_from_dict(s: dict) -> Scan:
    """Scan from the current (``properties``) or legacy (``oscillation`` [start, width]) form."""
    first, last = (int(v) for v in s["image_range"])
    n = last - first + 1
    props = s.get("properties")
    if props is not None:
        osc = list(props.get("oscillation", [0.0]))
        width = props["oscillation_width"][0] if "oscillation_width" in props else 0.0
        if len(osc) > 1:
            width = osc[1] - osc[0]
        exposure, epochs = props.get("exposure_time", []), props.get("epochs", [])
        start = osc[0] if osc else 0.0
    else:
        start, width = s.get("oscillation", (0.0, 0.0))
        exposure, epochs = s.get("exposure_time", []), s.get("epochs", [])
    return Scan((first, last), (start, width), np.resize(exposure, n), np.resize(epochs, n))


# ----------------------------------------------------------------------------------- imagesets


def _resolve(path: str, directory: Path) -> str:
    """A path from a JSON file: absolute, else next to the JSON file, else from the current folder."""
    path = os.path.expandvars(os.path.expanduser(path))
    if os.path.isabs(path):
        return path
    beside = directory / path
    if beside.parent.is_dir() or not Path(path).parent.is_dir():
        return str(beside)
    return os.path.abspath(path)


def expand_template(template: str, numbers: list[int]) -> list[str]:
    """File names of a '#' template for image numbers."""
    m = re.search(r"#+", template)
    if m is None:
        return [template] * len(numbers)
    width = len(m.group(0))
    return [template[: m.start()] + f"{n:0{width}d}" + template[m.end() :] for n in numbers]


def _format_sequence(first_file: str, indices: list[int] | None, verify_md5: bool) -> ImageSequence:
    """The sequence the image files themselves give (reader, format mask, shadow)."""
    fmt = detect(first_file, peek(first_file))
    if isinstance(fmt, SweepFormat):
        return fmt.read_sequence(first_file, indices)
    return group_images([first_file], verify_md5)[0]


def _build(iset: dict, models: dict, directory: Path, numbers: list[int], verify_md5: bool) -> ImageSequence:
    """One ImageSequence for an imageset dict, its models and its image numbers."""
    single = iset.get("single_file_indices")
    if "template" in iset or "master" in iset:
        template = _resolve(iset.get("template") or iset["master"], directory)
        paths = [template] * len(numbers) if single is not None or "master" in iset else None
        paths = paths or expand_template(template, numbers)
    else:
        images = [im["filename"] if isinstance(im, dict) else im for im in iset.get("images", [])]
        paths = [_resolve(p, directory) for p in images]
        template = paths[0] if paths else ""
    if not paths:
        raise ImageError(f"{directory}: imageset without images")
    if not os.path.exists(paths[0]):
        raise ImageError(f"{paths[0]}: image file named in the experiment file not found")
    hdf5_indices = [n - 1 for n in numbers] if (single is not None or "master" in iset) else None
    fmt = _format_sequence(paths[0], hdf5_indices, verify_md5)
    shadowing = iset.get("params", {}).get("dynamic_shadowing", "Auto")
    seq = ImageSequence(
        paths=paths,
        image_numbers=list(numbers),
        detector=models["detector"],
        beam=models["beam"],
        goniometer=models["goniometer"],
        scan=models["scan"],
        template=template,
        reader=fmt.reader,
        format_mask=fmt.format_mask,
        shadow=None if shadowing in _SHADOW_OFF else fmt.shadow,
        format_name=fmt.format_name,
        dynamic_shadowing=shadowing,
    )
    if fmt.shadow is not None and seq.shadow is not None and models["goniometer"] is not None:
        seq.shadow = replace(fmt.shadow, goniometer=models["goniometer"])
    if iset.get("mask"):
        mask = _resolve(iset["mask"], directory)
        seq.external_mask = read_mask_file(mask, models["detector"], mask)
    for key in ("gain", "pedestal", "dx", "dy"):
        if iset.get(key):
            raise ImageError(f"{iset[key]}: external {key} maps are not supported")
    return seq


def _merged_scan(scans: list[Scan], numbers: list[int]) -> Scan:
    """The scan of an imageset used by several experiments (e.g. one still per experiment)."""
    first = scans[0]
    exposure = np.concatenate([s.exposure_times for s in scans]) if scans else np.zeros(0)
    epochs = np.concatenate([s.epochs for s in scans]) if scans else np.zeros(0)
    n = len(numbers)
    return Scan((numbers[0], numbers[-1]), first.oscillation, np.resize(exposure, n), np.resize(epochs, n))


def _numbers(scans: list[Scan]) -> list[int]:
    numbers = sorted({n for s in scans for n in range(s.image_range[0], s.image_range[1] + 1)})
    if numbers != list(range(numbers[0], numbers[-1] + 1)):
        raise ImageError(f"image numbers {numbers[0]}..{numbers[-1]} of one imageset are not consecutive")
    return numbers


def _still_scan(n: int) -> Scan:
    return Scan((1, n), (0.0, 0.0))


def sequences_from_experiments(d: dict, directory: Path, verify_md5: bool = False) -> list[ImageSequence]:
    """ImageSequences of an ExperimentList dict, one per imageset, in imageset order (``verify_md5``: as
    for ``group_images``)."""
    beams = [beam_from_dict(b) for b in d.get("beam", [])]
    detectors = [detector_from_dict(x) for x in d.get("detector", [])]
    gonios = [goniometer_from_dict(g) for g in d.get("goniometer", [])]
    scans = [scan_from_dict(s) for s in d.get("scan", [])]
    users: dict[int, list[dict]] = {}
    for e in d.get("experiment", []):
        if not isinstance(e.get("imageset"), int):
            raise ImageError(f"{directory}: experiment without an imageset index")
        users.setdefault(e["imageset"], []).append(e)
    out = []
    for i, iset in enumerate(d.get("imageset", [])):
        exps = users.get(i, [])
        if not exps:
            continue
        e0 = exps[0]
        pick = {"beam": beams, "detector": detectors, "goniometer": gonios}
        models = {k: (v[e0[k]] if isinstance(e0.get(k), int) else None) for k, v in pick.items()}
        if models["detector"] is None or models["beam"] is None:
            raise ImageError(f"{directory}: imageset {i} has no beam or detector model")
        exp_scans = [scans[e["scan"]] for e in exps if isinstance(e.get("scan"), int)]
        if exp_scans:
            numbers = _numbers(exp_scans)
            models["scan"] = exp_scans[0] if len(exp_scans) == 1 else _merged_scan(exp_scans, numbers)
        else:
            count = len(iset.get("images", [])) or len(iset.get("single_file_indices", [])) or 1
            numbers = [k + 1 for k in iset.get("single_file_indices", range(count))]
            models["scan"] = _still_scan(len(numbers))
            models["scan"].image_range = (numbers[0], numbers[-1])
        seq = _build(iset, models, directory, numbers, verify_md5)
        seq.identifiers = [str(e.get("identifier") or "") for e in exps]
        out.append(seq)
    return out


def sequences_from_datablocks(
    blocks: list[dict], directory: Path, verify_md5: bool = False
) -> list[ImageSequence]:
    """ImageSequences of an old DataBlock list (``datablock.json``)."""
    out = []
    for block in blocks:
        beams = [beam_from_dict(b) for b in block.get("beam", [])]
        detectors = [detector_from_dict(x) for x in block.get("detector", [])]
        gonios = [goniometer_from_dict(g) for g in block.get("goniometer", [])]
        scans = [scan_from_dict(s) for s in block.get("scan", [])]
        for iset in block.get("imageset", []):
            source = iset
            if iset.get("__id__") in ("ImageSet", "ImageGrid") and iset.get("images"):
                source = iset["images"][0]

            def pick(key: str, models: list, src: dict = source):
                return models[src[key]] if isinstance(src.get(key), int) else None

            models = {
                "beam": pick("beam", beams),
                "detector": pick("detector", detectors),
                "goniometer": pick("goniometer", gonios),
            }
            if models["detector"] is None or models["beam"] is None:
                raise ImageError(f"{directory}: datablock imageset has no beam or detector model")
            scan = pick("scan", scans)
            if "images" in iset and iset.get("__id__") != "ImageSequence":
                images = iset["images"]
                scan = _still_scan(len(images))
                if images and isinstance(images[0], dict) and "image" in images[0]:
                    iset = dict(iset, single_file_indices=[im["image"] for im in images])
                    iset["template"] = images[0]["filename"]
            numbers = list(range(scan.image_range[0], scan.image_range[1] + 1))
            models["scan"] = scan
            out.append(_build(iset, models, directory, numbers, verify_md5))
    return out


def read_experiments(path: str, verify_md5: bool = False) -> list[ImageSequence]:
    """The sequences of an ExperimentList JSON or old DataBlock JSON file (``verify_md5``: CBF readers check
    each image's Content-MD5)."""
    try:
        with open(path) as fh:
            data = json.load(fh)
    except FileNotFoundError as e:
        raise ImageError(f"{path}: no such file") from e
    except (OSError, ValueError) as e:
        raise ImageError(f"{path}: not a readable JSON experiment file ({e})") from e
    directory = Path(path).resolve().parent
    try:
        if isinstance(data, dict) and data.get("__id__") == "ExperimentList":
            sequences = sequences_from_experiments(data, directory, verify_md5)
        else:
            blocks = data if isinstance(data, list) else [data]
            if not blocks or not all(isinstance(b, dict) and b.get("__id__") == "DataBlock" for b in blocks):
                raise ImageError(f"{path}: JSON is neither an ExperimentList nor a DataBlock list")
            sequences = sequences_from_datablocks(blocks, directory, verify_md5)
    except ImageError as e:
        message = str(e)
        raise ImageError(message if Path(path).name in message else f"{path}: {message}") from e
    except (KeyError, IndexError, TypeError, ValueError, AttributeError, OverflowError) as e:
        raise ImageError(f"{path}: malformed experiment file ({type(e).__name__}: {e})") from e
    for seq in sequences:
        _check_finite(path, seq)
    return sequences


def _check_finite(path: str, seq: ImageSequence) -> None:
    """Experiment files are validated: NaN or infinite geometry is refused, naming the file."""
    vectors = [np.atleast_1d(seq.beam.wavelength), np.asarray(seq.beam.direction, float)]
    for panel in seq.detector:
        vectors += [panel.origin, panel.fast_axis, panel.slow_axis, np.asarray(panel.pixel_size, float)]
    if not all(np.isfinite(v).all() for v in vectors):
        raise ImageError(f"{path}: the experiment file has a non-finite beam or detector value; correct it")


# ----------------------------------------------------------------------------------- writing


def _written_trusted_range(lo: float, hi: float, legacy: bool) -> list[float]:
    """The inclusive integer range ``lo..hi`` as a trusted_range every DIALS reads the same way.

    Current dxtbx reads the ends as inclusive, dxtbx of DIALS <= 3.12 as exclusive: (lo - 0.5, hi + 0.5)
    trusts exactly the counts lo..hi in both (with ``lo`` itself, 3.12 would mask every zero pixel of a
    Pilatus image). ``legacy`` writes 3.12's own form (lo - 1, hi + 1). Non-integer ends are kept."""
    if not (float(lo).is_integer() and float(hi).is_integer() and hi > lo):
        return [lo, hi]  # e.g. a hierarchy group's (0, 0): no range to keep
    step = 1.0 if legacy else 0.5
    return [lo - step, hi + step]


def _panel_dict(p: Panel, legacy: bool = False) -> dict:
    pad = p.type == "SENSOR_PAD" and p.thickness > 0 and p.mu
    lo, hi = p.trusted_range
    return {
        "name": p.name,
        "type": p.type,
        "fast_axis": list(map(float, p.fast_axis)),
        "slow_axis": list(map(float, p.slow_axis)),
        "origin": list(map(float, p.origin)),
        "raw_image_offset": list(p.raw_offset),
        "image_size": list(p.image_size),
        "pixel_size": list(p.pixel_size),
        "trusted_range": _written_trusted_range(lo, hi, legacy),
        "thickness": p.thickness,
        "material": p.material,
        "mu": float(p.mu or 0.0),
        "identifier": p.identifier,
        "mask": [list(r) for r in p.mask_rects],
        "gain": p.gain,
        "pedestal": p.pedestal,
        "px_mm_strategy": {"type": "ParallaxCorrectedPxMmStrategy" if pad else "SimplePxMmStrategy"},
    }


def _detector_dict(detector: Detector, legacy: bool = False) -> dict:
    root = _panel_dict(
        Panel((0, 0), (0.0, 0.0), (0.0, 0.0), np.zeros(3), (1, 0, 0), (0, 1, 0), name="", type="")
    )
    root["children"] = [{"panel": i} for i in range(len(detector))]
    return {"panels": [_panel_dict(p, legacy) for p in detector], "hierarchy": root}


def _beam_dict(b: Beam) -> dict:
    return {
        "__id__": "monochromatic",
        "direction": list(map(float, b.direction)),
        "wavelength": b.wavelength,
        "divergence": 0.0,
        "sigma_divergence": 0.0,
        "polarization_normal": list(map(float, b.polarization_normal)),
        "polarization_fraction": b.polarization_fraction,
        "flux": b.flux,
        "transmission": 1.0,
        "probe": "x-ray",
        "sample_to_source_distance": 0.0,
    }


def _goniometer_dict(g: Goniometer) -> dict:
    if g.is_multi_axis:
        return {
            "axes": [list(map(float, a)) for a in (g.axes if g.given_axes is None else g.given_axes)],
            "angles": list(map(float, g.angles)),
            "names": list(g.names or []),
            "scan_axis": g.scan_axis,
        }
    identity = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]
    return {
        "rotation_axis": list(map(float, g.rotation_axis)),
        "fixed_rotation": identity,
        "setting_rotation": identity,
    }


def _scan_dict(s: Scan) -> dict:
    n = s.num_images
    return {
        "image_range": list(s.image_range),
        "batch_offset": 0,
        "oscillation": list(s.oscillation),
        "exposure_time": [float(v) for v in np.resize(s.exposure_times, n)]
        if s.exposure_times.size
        else [0.0] * n,
        "epochs": [float(v) for v in np.resize(s.epochs, n)] if s.epochs.size else [0.0] * n,
        "valid_image_ranges": {},
    }


def _imageset_dict(seq: ImageSequence) -> dict:
    hdf5 = isinstance(seq.reader, NexusReader)
    d: dict = {"__id__": "ImageSequence", "template": os.path.abspath(seq.template)}
    if hdf5:
        d["template"] = os.path.abspath(seq.paths[0])
        d["single_file_indices"] = [n - seq.reader.first_number for n in seq.image_numbers]
    if seq.external_mask is not None:
        log.warning("The lookup mask of %s is not written to the experiment file", seq.template)
    d |= {"mask": None, "gain": None, "pedestal": None, "dx": None, "dy": None}
    d["params"] = {"dynamic_shadowing": seq.dynamic_shadowing, "multi_panel": False}
    return d


def experiment_identifier(seq: ImageSequence, image_index: int | None) -> str:
    """The identifier the input experiment file gave this experiment (a rotation sequence, or image
    ``image_index`` of a still sequence), or "" when it gave none."""
    ids = seq.identifiers
    if image_index is None:
        return ids[0] if len(ids) == 1 else ""
    return ids[image_index] if len(ids) == len(seq) else ""


def experiments_dict(
    sequences: list[ImageSequence], legacy_trusted_range: bool = False, identifiers: list[str] | None = None
) -> dict:
    """ExperimentList dict: one experiment per rotation sequence, one per image of a still sequence.

    ``identifiers`` (one per experiment, in that order) default to new UUIDs; pass the ones written in
    the reflection table's identifier map so the two files match. A sequence whose beam, detector or
    goniometer is similar to the previous sequence's shares that model, as dials.import shares them.
    ``legacy_trusted_range`` writes (lo - 1, hi + 1): what dxtbx before 3.12 (DIALS <= 3.12), which
    reads the ends as exclusive, needs to trust the same integer values."""
    out: dict = {"__id__": "ExperimentList", "experiment": [], "imageset": [], "beam": [], "detector": []}
    out |= {"goniometer": [], "scan": [], "crystal": [], "profile": [], "scaling_model": []}
    prev: ImageSequence | None = None
    for i, seq in enumerate(sequences):
        out["imageset"].append(_imageset_dict(seq))
        if prev is None or not seq.beam.is_similar_to(prev.beam):
            out["beam"].append(_beam_dict(seq.beam))
        if prev is None or not seq.detector.is_similar_to(prev.detector):
            out["detector"].append(_detector_dict(seq.detector, legacy_trusted_range))
        if seq.goniometer is not None and (
            prev is None or prev.goniometer is None or not seq.goniometer.is_similar_to(prev.goniometer)
        ):
            out["goniometer"].append(_goniometer_dict(seq.goniometer))
        prev = seq
        models = {"beam": len(out["beam"]) - 1, "detector": len(out["detector"]) - 1}
        if seq.goniometer is not None:
            models["goniometer"] = len(out["goniometer"]) - 1
        parts = [seq.sub(k, k + 1).scan for k in range(len(seq))] if seq.is_still else [seq.scan]
        for scan in parts:
            n = len(out["experiment"])
            identifier = identifiers[n] if identifiers else str(uuid.uuid4())
            exp = {"__id__": "Experiment", "identifier": identifier, **models}
            exp |= {"scan": len(out["scan"]), "imageset": i}
            out["scan"].append(_scan_dict(scan))
            out["experiment"].append(exp)
    return out


def write_experiments(
    path: str,
    sequences: list[ImageSequence],
    legacy_trusted_range: bool = False,
    identifiers: list[str] | None = None,
) -> None:
    """Write the sequences as an ExperimentList JSON file (``imported.expt`` style)."""
    text = json.dumps(experiments_dict(sequences, legacy_trusted_range, identifiers), indent=2)
    tmp = f"{path}.tmp"
    with open(tmp, "w") as fh:
        fh.write(text)
    os.replace(tmp, path)
