"""A model bundle: the Keras model plus one JSON of everything inference needs.

Layout of a bundle folder::

    bundle.json   class order, input size, preprocessing, temperature, malignancy scaling,
                  threshold, training summary, metrics, version, sha256 of model.keras,
                  and decision_sha256 over that hash and the calibration
    model.keras   the Keras model (logits output), loaded with safe_mode=True

Both hashes are checked on every load, so a swapped or corrupted model file, or a field that
changes a result (temperature, scaling, threshold, TTA, classes, the image checks' reference)
edited by hand, is refused, as is a bundle without the check (the batch tool's ``--threshold``
is the way to try another operating point). They guard against accidents, not against an
attacker.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
import zipfile
from datetime import UTC, datetime
from pathlib import Path

import keras

from screening import __version__, augmentation, colour, layers  # noqa: F401  (register custom layers for loading)
from screening.errors import UserError
from screening.files import sha256_of, write_atomically
from screening.info import CLASS_CODES, CLASS_NAMES, MALIGNANT
from screening.preprocessing import INPUT_SIZE, SCALING

FORMAT = "skinscreen-bundle"
# 2: the threshold applies to the malignancy probability after ``malignancy_scaling``; software
# that knows only format 1 would compare it with the plain sum, so it must refuse these bundles.
# 3: decision_sha256 covers every field of DECISION_FIELDS (2 covered the first four).
FORMAT_VERSION = 3
MODEL_FILE = "model.keras"
META_FILE = "bundle.json"
# Everything besides the image that decides a result: the weights (by hash), the calibration,
# the flip TTA, the class order and which are malignant, and the image checks' reference.
DECISION_FIELDS = ("sha256", "temperature", "malignancy_scaling", "threshold", "tta", "classes", "malignant", "quality")
_DECISION_FIELDS_BY_FORMAT = {1: DECISION_FIELDS[:4], 2: DECISION_FIELDS[:4]}
ZEROS = {"module": "keras.initializers", "class_name": "Zeros", "config": {}, "registered_name": None}


class BundleError(UserError):
    """A model path that is not a valid SkinScreen bundle; the message says why."""


def decision_digest(meta: dict) -> str:
    """sha256 of the decision fields of the bundle's format as stored in JSON (floats round-trip
    exactly); a bundle saved by an older version is checked over the fields it covered."""
    names = _DECISION_FIELDS_BY_FORMAT.get(meta.get("format_version", FORMAT_VERSION), DECISION_FIELDS)
    fields = {k: meta.get(k) for k in names}
    return hashlib.sha256(json.dumps(fields, sort_keys=True, default=_jsonable).encode()).hexdigest()


def default_meta() -> dict:
    """The inference contract with neutral calibration (T=1, threshold 0.5)."""
    now = datetime.now(UTC)
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "name": "skinscreen-mobilenet",
        "version": now.strftime("%Y.%m.%d"),
        "software_version": __version__,
        "created": now.isoformat(timespec="seconds"),
        "classes": list(CLASS_CODES),
        "class_names": CLASS_NAMES,
        "malignant": list(MALIGNANT),
        "input_size": INPUT_SIZE,
        "preprocessing": {
            "function": "screening.preprocessing.preprocess",
            "steps": ["exif_transpose", "to_rgb", "centre_square", f"resize_{INPUT_SIZE}_bicubic_antialias"],
            "model_input": "uint8-range RGB; the model's first layer scales x*scale+offset",
            "scaling": SCALING,
        },
        "temperature": 1.0,
        "threshold": 0.5,
        "tta": False,
        "training": {},
        "metrics": {},
    }


def save_bundle(model: keras.Model, path: str | Path, meta: dict, overwrite: bool = False) -> Path:
    """Write model + JSON into a new folder atomically (temporary folder, then rename)."""
    path = Path(path)
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} already exists (choose another path or allow overwrite)")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    try:
        model.save(tmp / MODEL_FILE)
        full = {**default_meta(), **meta, "model_file": MODEL_FILE, "sha256": sha256_of(tmp / MODEL_FILE)}
        full = json.loads(json.dumps(full, default=_jsonable))  # hash what will be read back
        full["decision_sha256"] = decision_digest(full)
        (tmp / META_FILE).write_text(json.dumps(full, indent=2) + "\n")
        if path.exists():
            shutil.rmtree(path)
        tmp.rename(path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return path


def _jsonable(obj):
    if hasattr(obj, "tolist"):
        return obj.tolist()
    raise TypeError(f"not JSON serializable: {type(obj).__name__}")


def read_meta(path: str | Path) -> tuple[Path, dict]:
    """Find and validate ``bundle.json`` for a bundle folder (or the JSON itself)."""
    path = Path(path)
    folder = path.parent if path.name == META_FILE else path
    if not folder.exists():
        raise BundleError(f"model not found: {path}")
    meta_path = folder / META_FILE
    if not meta_path.is_file():
        raise BundleError(f"{path}: not a SkinScreen model bundle (no {META_FILE})")
    try:
        meta = json.loads(meta_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise BundleError(f"{meta_path}: unreadable bundle description ({err})") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise BundleError(f"{meta_path}: not a SkinScreen model bundle (format is not {FORMAT!r})")
    if meta.get("format_version", 0) > FORMAT_VERSION:
        raise BundleError(f"{meta_path}: bundle format {meta['format_version']} is newer than this software")
    if list(meta.get("classes", [])) != list(CLASS_CODES):
        raise BundleError(f"{meta_path}: class order {meta.get('classes')} does not match {list(CLASS_CODES)}")
    if "decision_sha256" not in meta:
        raise BundleError(f"{meta_path}: the bundle has no check of its calibration (decision_sha256), so an edit "
                          "to it could not be told; refusing to load. Calibrate its run again with this version "
                          "(screening-train ... --calibrate-only) to write one that has it")
    if decision_digest(meta) != meta["decision_sha256"]:
        raise BundleError(f"{meta_path}: the temperature, malignancy scaling, threshold, TTA or another field that "
                          "decides a result differs from what the bundle was saved with (decision_sha256); refusing "
                          "to load. Use --threshold or --tta to try another setting")
    return folder, meta


def update_meta(path: str | Path, **changes: object) -> dict:
    """Change fields of a saved bundle's description and seal it again (its format becomes the
    current one): how a bundle is renamed, given its TTA setting or its hold-out figures when it
    is shipped. The model file must still match."""
    folder, meta = read_meta(path)
    if sha256_of(folder / meta.get("model_file", MODEL_FILE)) != meta.get("sha256"):
        raise BundleError(f"{folder}: the model file does not match the bundle; refusing to seal it again")
    meta = json.loads(json.dumps({**meta, **changes, "format_version": FORMAT_VERSION}, default=_jsonable))
    meta["decision_sha256"] = decision_digest(meta)
    write_atomically(folder / META_FILE, lambda tmp: tmp.write_text(json.dumps(meta, indent=2) + "\n"))
    return meta


def load_bundle(path: str | Path) -> tuple[keras.Model, dict]:
    """Load and verify a bundle; refuse a model file whose sha256 differs from the JSON."""
    folder, meta = read_meta(path)
    model_path = folder / meta.get("model_file", MODEL_FILE)
    if not model_path.is_file():
        raise BundleError(f"{folder}: model file {model_path.name} is missing")
    digest = sha256_of(model_path)
    if digest != meta.get("sha256"):
        raise BundleError(
            f"{model_path}: sha256 {digest[:12]}... does not match the bundle's "
            f"{str(meta.get('sha256'))[:12]}...; the file was changed or replaced, refusing to load"
        )
    try:  # keras.saving.load_model, less the random initial weights the file's weights replace
        with zipfile.ZipFile(model_path) as archive:
            config = json.loads(archive.read("config.json"))
        model = keras.saving.deserialize_keras_object(without_random_init(config), safe_mode=True)
        model.load_weights(model_path)
    except Exception as err:  # noqa: BLE001  Keras raises many types for a foreign or damaged archive
        raise BundleError(f"{model_path}: not a loadable Keras model ({err})") from None
    return model, meta


def without_random_init(config: object) -> object:
    """A saved model's config with each random initialiser replaced by zeros. Building a layer
    draws its initial weights before the file's are read over them, and drawing random ones
    compiled a program per weight shape: a first start took 9.2 s to its first result against
    5.0 s without (benchmarks/cold_start.py, no compilation cache)."""
    if isinstance(config, list):
        return [without_random_init(item) for item in config]
    if not isinstance(config, dict):
        return config
    return {key: ZEROS if key.endswith("initializer") and isinstance(value, dict)
            and value.get("class_name") not in ("Zeros", "Ones", "Constant") else without_random_init(value)
            for key, value in config.items()}
