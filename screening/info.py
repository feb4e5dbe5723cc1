"""Single source of dataset and class facts (the MedMNIST ``INFO`` idea).

Every other module reads class order, names and malignancy from here.
"""

from __future__ import annotations

CLASSES: dict[str, dict] = {
    "akiec": {"name": "Actinic keratosis / intraepithelial carcinoma", "malignant": True},
    "bcc": {"name": "Basal cell carcinoma", "malignant": True},
    "bkl": {"name": "Benign keratosis-like lesion", "malignant": False},
    "df": {"name": "Dermatofibroma", "malignant": False},
    "mel": {"name": "Melanoma", "malignant": True},
    "nv": {"name": "Melanocytic nevus", "malignant": False},
    "vasc": {"name": "Vascular lesion", "malignant": False},
}

#: Model output order (alphabetical, as the ISIC 2018 challenge lists them).
CLASS_CODES: tuple[str, ...] = tuple(CLASSES)
CLASS_NAMES: dict[str, str] = {code: c["name"] for code, c in CLASSES.items()}
MALIGNANT: tuple[str, ...] = tuple(code for code, c in CLASSES.items() if c["malignant"])

#: What a clinic's own labels may say instead of a diagnosis (a biopsy's verdict): evaluation
#: then gives the malignancy figures alone.
OUTCOMES: dict[str, bool] = {"malignant": True, "benign": False}

DATASET: dict = {
    "name": "HAM10000",
    "metadata": "HAM10000_metadata.csv",
    "columns": ("lesion_id", "image_id", "dx"),
    # Image folders, best copy first: for each image_id the first folder holding it wins.
    "image_folders": ("originals_600x450", "images_224", "images_200x150"),
    "licence": "CC BY-NC 4.0",
    "citation": (
        "Tschandl P., Rosendahl C., Kittler H. The HAM10000 dataset, a large collection of "
        "multi-source dermatoscopic images of common pigmented skin lesions. "
        "Sci. Data 5, 180161 (2018). doi:10.1038/sdata.2018.161"
    ),
}

#: ISIC challenge ground truth (one column per class, 1.0 on the right one): 2018 Task 3 names
#: the seven classes as here; 2019 calls akiec AK and adds classes no HAM10000 model knows.
ISIC_ONE_HOT: dict[str, str] = {"MEL": "mel", "NV": "nv", "BCC": "bcc", "AKIEC": "akiec", "AK": "akiec",
                                "BKL": "bkl", "DF": "df", "VASC": "vasc"}
ISIC_UNKNOWN: dict[str, str] = {"SCC": "squamous cell carcinoma", "UNK": "none of the others"}
#: ISIC's other tables say only benign or malignant, as a biopsy does: 2020's ground truth
#: (``image_name``, ``benign_malignant``, ``target`` 0 or 1), the ISIC Archive's metadata as its
#: site and isic-cli export it (``isic_id``; ``benign_malignant``, or since its 2024 taxonomy
#: ``diagnosis_1``: Benign, Malignant, Indeterminate), 2024's (``isic_id``, ``target``). Columns
#: in the order they are looked for; values lower-cased. Other values (indeterminate, empty)
#: are left out with a note, as ISIC_UNKNOWN's classes are.
ISIC_IMAGE_COLUMNS = ("image_name", "isic_id")
ISIC_OUTCOME_COLUMNS = ("benign_malignant", "diagnosis_1", "target")
ISIC_OUTCOME_VALUES: dict[str, str] = {"benign": "benign", "malignant": "malignant", "0": "benign", "1": "malignant"}


#: Subgroups of the metadata that ``screening.subgroups`` gives figures for: per kind, the
#: columns that may hold it (HAM10000's name first, then the ISIC Archive's), and how values are
#: shown. HAM10000's fifteen body sites are gathered into regions (a validation split holds a
#: handful of ears); a value not listed is shown as it is, a missing one as ``unknown``.
SUBGROUPS: dict[str, dict] = {
    "sex": {"columns": ("sex",)},
    "age": {"columns": ("age", "age_approx"), "bands": (30, 50, 70)},
    "body site": {"columns": ("localization", "anatom_site_general_challenge", "anatom_site_general"),
                  "regions": {"head and neck": ("face", "scalp", "ear", "neck"),
                              "trunk": ("back", "trunk", "chest", "abdomen"),
                              "hands and feet": ("hand", "foot", "acral")}},
    "diagnosis confirmed by": {"columns": ("dx_type", "diagnosis_confirm_type"),
                               "names": {"histo": "histopathology", "follow_up": "follow-up (unchanged)",
                                         "consensus": "expert consensus", "confocal": "confocal microscopy"}},
}


def label_of(code: str) -> str:
    """How a class is shown to people: its name, then its code."""
    return f"{CLASS_NAMES[code]} ({code})"


NOTICE = "Research and education tool, not a medical device. Not for diagnosis."
