import os
import re

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from screening import data
from screening.data import (
    DataError,
    find_images,
    fold_by_lesion,
    is_outcome,
    load_images,
    read_labels,
    read_metadata,
    split_by_lesion,
)
from screening.info import CLASS_CODES, OUTCOMES
from screening.preprocessing import preprocess
from tests.conftest import HAM, lesion_like, needs_ham


def synthetic_metadata(n_lesions: int = 400, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    dx = rng.choice(["nv", "mel", "bkl", "bcc", "akiec", "vasc", "df"], n_lesions,
                    p=[0.6, 0.12, 0.11, 0.07, 0.05, 0.03, 0.02])
    rows = []
    for i, d in enumerate(dx):
        for j in range(rng.integers(1, 5)):  # 1-4 images per lesion
            rows.append({"lesion_id": f"L{i:04d}", "image_id": f"I{i:04d}_{j}", "dx": d})
    return pd.DataFrame(rows)


def _assert_no_leak(df: pd.DataFrame, split: pd.Series) -> None:
    per_lesion = split.groupby(df["lesion_id"]).nunique()
    assert (per_lesion == 1).all(), f"lesions in two splits: {list(per_lesion[per_lesion > 1].index[:5])}"


def test_split_has_no_lesion_in_two_splits_and_is_stratified():
    df = synthetic_metadata()
    split = split_by_lesion(df, seed=3)
    _assert_no_leak(df, split)
    assert set(split) == {"train", "val", "test"}
    lesions = df.assign(split=split).groupby("lesion_id").first()
    for dx, group in lesions.groupby("dx"):
        frac = (group["split"] == "train").mean()
        assert 0.6 <= frac <= 0.95, f"{dx}: train fraction {frac:.2f}"


def test_split_is_reproducible_and_seeded():
    df = synthetic_metadata()
    assert split_by_lesion(df, seed=1).equals(split_by_lesion(df, seed=1))
    assert not split_by_lesion(df, seed=1).equals(split_by_lesion(df, seed=2))


def test_split_rejects_bad_fractions():
    with pytest.raises(ValueError, match="sum"):
        split_by_lesion(synthetic_metadata(), fractions=(0.5, 0.2, 0.2))


def test_labels_csv_errors_name_the_path(tmp_path):
    with pytest.raises(DataError, match="not found.*nope.csv"):
        read_labels(tmp_path / "nope.csv")
    bad = tmp_path / "bad.csv"
    bad.write_text("image_id,label\nISIC_1,nv\n")
    with pytest.raises(DataError, match=r"bad.csv: missing column\(s\) dx"):
        read_labels(bad)
    unknown = tmp_path / "unknown.csv"
    unknown.write_text("image_id,dx\nISIC_1,cancer\n")
    with pytest.raises(DataError, match="unknown dx value"):
        read_labels(unknown)


@pytest.mark.parametrize("text", [
    "image_id,dx\nISIC_1,mel\nISIC_2,nv\n",
    "\ufeffimage_id;dx\r\nISIC_1;MEL\r\nISIC_2;NV \r\n",  # Excel's "CSV UTF-8" where the decimal mark is a comma
    "image_id\tdx\nISIC_1\tmel\n ISIC_2 \t nv\n",  # a table pasted from a spreadsheet
])
def test_labels_made_in_a_spreadsheet_are_read_as_meant(tmp_path, text):
    labels = tmp_path / "labels.csv"
    labels.write_bytes(text.encode())
    assert read_labels(labels).to_dict("records") == [{"image_id": "ISIC_1", "dx": "mel"},
                                                      {"image_id": "ISIC_2", "dx": "nv"}]


def test_isic_challenge_ground_truth_is_read_as_image_id_and_dx(tmp_path, capsys):
    """The external test sets come as ISIC's one-hot CSVs: 2018 Task 3 with the seven classes,
    2019 with AK for akiec and two classes a HAM10000 model does not know."""
    task3 = tmp_path / "ISIC2018_Task3_Test_GroundTruth.csv"
    task3.write_text("image,MEL,NV,BCC,AKIEC,BKL,DF,VASC\nISIC_0034524,0.0,1.0,0.0,0.0,0.0,0.0,0.0\n"
                     "ISIC_0034525,0.0,0.0,0.0,1.0,0.0,0.0,0.0\n")
    assert read_labels(task3).to_dict("records") == [{"image_id": "ISIC_0034524", "dx": "nv"},
                                                     {"image_id": "ISIC_0034525", "dx": "akiec"}]
    isic2019 = tmp_path / "ISIC_2019_Training_GroundTruth.csv"
    isic2019.write_text("image,MEL,NV,BCC,AK,BKL,DF,VASC,SCC,UNK\nISIC_0000000,0,1,0,0,0,0,0,0,0\n"
                        "ISIC_0000001,0,0,0,1,0,0,0,0,0\nISIC_0000002,0,0,0,0,0,0,0,1,0\n"
                        "ISIC_0000003,1,0,0,0,0,0,0,0,0\n")
    assert list(read_labels(isic2019)["dx"]) == ["nv", "akiec", "mel"]
    assert "ISIC_2019_Training_GroundTruth.csv: 1 SCC (squamous cell carcinoma) left out" in capsys.readouterr().err
    two = tmp_path / "two.csv"
    two.write_text("image,MEL,NV,BCC,AKIEC,BKL,DF,VASC\nISIC_9,1,1,0,0,0,0,0\n")
    with pytest.raises(DataError, match="two.csv: 1 row.s. without exactly one class marked 1, such as ISIC_9"):
        read_labels(two)


@pytest.mark.parametrize("name, text", [
    ("ISIC_2020_Training_GroundTruth_v2.csv",  # 2020's ground truth: target repeats benign_malignant
     ("image_name,patient_id,lesion_id,sex,age_approx,anatom_site_general_challenge,diagnosis,benign_malignant,target\n"
     "ISIC_2637011,IP_7279968,IL_7972535,male,45.0,head/neck,unknown,benign,0\n"
     "ISIC_0015719,IP_3075186,IL_4649854,female,45.0,upper extremity,melanoma,malignant,1\n"
     "ISIC_0052212,IP_2842074,IL_9087444,female,50.0,lower extremity,nevus,benign,0\n")),
    ("metadata.csv",  # the ISIC Archive's metadata as isic-cli downloads it (2024 taxonomy)
     ("isic_id,attribution,copyright_license,lesion_id,diagnosis_1,diagnosis_3\n"
     "ISIC_2637011,Anonymous,CC-0,IL_7972535,Benign,Nevus\n"
     "ISIC_0015719,Anonymous,CC-BY-NC,IL_4649854,Malignant,Melanoma Invasive\n"
     "ISIC_0099999,Anonymous,CC-0,IL_0000001,Indeterminate,Atypical melanocytic neoplasm\n"
     "ISIC_0052212,Anonymous,CC-0,IL_9087444,Benign,Nevus\n"
     "ISIC_0099998,Anonymous,CC-0,IL_0000002,,\n")),
    ("train-metadata.csv",  # 2024's: a target alone
     "isic_id,target,patient_id\nISIC_2637011,0,IP_1\nISIC_0015719,1,IP_2\nISIC_0052212,0,IP_3\n"),
])
def test_isic_tables_of_benign_or_malignant_are_labels_of_outcome(tmp_path, capsys, name, text):
    """ISIC's other tables (2020's ground truth, the ISIC Archive's metadata, 2024's) say
    benign or malignant, as a biopsy does: labels for the malignancy figures, by lesion where
    they name lesions; rows with no verdict are left out and counted."""
    path = tmp_path / name
    path.write_text(text)
    labels = read_labels(path, diagnoses=(*CLASS_CODES, *OUTCOMES))
    assert list(labels["image_id"]) == ["ISIC_2637011", "ISIC_0015719", "ISIC_0052212"]
    assert list(labels["dx"]) == ["benign", "malignant", "benign"] and is_outcome(labels["dx"])
    assert ("lesion_id" in labels) == ("lesion_id" in text)
    err = capsys.readouterr().err
    assert (f"note: {name}: 2 row(s) left out: diagnosis_1 neither benign nor malignant (empty, indeterminate)" in err
            ) == (name == "metadata.csv")


def test_metadata_best_copy_wins_and_missing_image_is_named(tmp_path):
    (tmp_path / "images_200x150").mkdir()
    (tmp_path / "images_224").mkdir()
    for i in ("A", "B"):
        Image.fromarray(lesion_like(150, 200)).save(tmp_path / "images_200x150" / f"{i}.jpg")
    Image.fromarray(lesion_like(224, 224)).save(tmp_path / "images_224" / "A.jpg")
    pd.DataFrame({"lesion_id": ["L1", "L2"], "image_id": ["A", "B"], "dx": ["nv", "mel"]}).to_csv(
        tmp_path / "HAM10000_metadata.csv", index=False)
    df = read_metadata(tmp_path)
    assert df["path"].str.contains("images_224").tolist() == [True, False]
    with pytest.raises(DataError, match="preferred image folder not found"):
        read_metadata(tmp_path, prefer=["images_2244"])
    (tmp_path / "images_200x150" / "B.jpg").unlink()
    with pytest.raises(DataError, match="image B is listed but has no file"):
        read_metadata(tmp_path)
    with pytest.raises(DataError, match="image folder not found"):
        find_images(["A"], [tmp_path / "missing"])


def test_an_image_id_may_be_a_file_name_or_a_path_inside_the_folder(tmp_path):
    """As a clinic lists its own images: with their suffix, or in the subfolders they are kept in."""
    (tmp_path / "2026" / "march").mkdir(parents=True)
    for name in ("A.jpg", "2026/march/B.png"):
        Image.fromarray(lesion_like()).save(tmp_path / name)
    found = find_images(["A", "A.jpg", "2026/march/B.png"], [tmp_path])
    assert found == [str(tmp_path / "A.jpg")] * 2 + [str(tmp_path / "2026" / "march" / "B.png")]
    with pytest.raises(DataError, match="image 2026/march/B is listed but has no file in .* by its path inside"):
        find_images(["2026/march/B"], [tmp_path])  # a path keeps its suffix
    with pytest.raises(DataError, match=r"^7 images \(C0, C1, C2, C3, C4, \.\.\.\) are listed but have no file"):
        find_images(["A", *(f"C{i}" for i in range(7))], [tmp_path])  # all at once, not one per rerun


def test_load_images_decodes_once_into_a_cache(tmp_path, monkeypatch):
    paths = []
    for i in range(3):
        p = tmp_path / f"{i}.png"
        Image.fromarray(lesion_like(seed=i)).save(p)
        paths.append(str(p))
    first = load_images(paths, workers=2, cache_dir=tmp_path / "cache")
    assert first.shape == (3, 224, 224, 3) and first.dtype == np.uint8
    assert len(list((tmp_path / "cache").glob("*.npy"))) == 1
    with monkeypatch.context() as m:  # the cache, not the decoder, answers the second call
        m.setattr(data, "preprocess", lambda *a: pytest.fail("decoded again"))
        assert np.array_equal(load_images(paths, cache_dir=tmp_path / "cache"), first)
    small = load_images(paths, cache_dir=tmp_path / "cache", size=96)  # another size is another cache
    assert small.shape == (3, 96, 96, 3) and len(list((tmp_path / "cache").glob("*.npy"))) == 2
    np.testing.assert_array_equal(small[1], preprocess(paths[1], 96))


def test_a_changed_file_or_decoder_makes_a_new_cache(tmp_path, monkeypatch):
    """A stale cache would train on the old pixels: the key covers each file and the decoding code."""
    paths = [str(tmp_path / f"{i}.png") for i in range(2)]
    for i, p in enumerate(paths):
        Image.fromarray(lesion_like(seed=i)).save(p)
    key = data.cache_key(paths)
    first = load_images(paths, cache_dir=tmp_path / "cache")
    Image.fromarray(lesion_like(seed=5)).save(paths[1])
    os.utime(paths[1], ns=(1, 1))  # even with the old time stamp: the size changed
    assert data.cache_key(paths) != key
    second = load_images(paths, cache_dir=tmp_path / "cache")
    np.testing.assert_array_equal(second[0], first[0])
    np.testing.assert_array_equal(second[1], preprocess(paths[1]))
    assert not np.array_equal(second[1], first[1])
    before = data.cache_key(paths)
    code = tmp_path / "preprocessing.py"
    code.write_text("# another version of the preprocessing code\n")
    monkeypatch.setattr(data, "_DECODERS", (str(code), "avif.py", "dicom.py"))  # an absolute path replaces the folder
    assert data.cache_key(paths) != before


def test_runs_sharing_a_cache_folder_can_write_it_at_once(tmp_path, monkeypatch):
    """Parallel training runs decode the same list into one cache folder: a second writer
    finishing while the first is still saving must not take the first one's file away."""
    paths = []
    for i in range(2):
        Image.fromarray(lesion_like(seed=i)).save(tmp_path / f"{i}.png")
        paths.append(str(tmp_path / f"{i}.png"))
    save, calls = np.save, []

    def save_then_let_another_run_finish(*args, **kwargs):
        save(*args, **kwargs)
        calls.append(1)
        if len(calls) == 1:
            load_images(paths, cache_dir=tmp_path / "cache")

    monkeypatch.setattr(np, "save", save_then_let_another_run_finish)
    first = load_images(paths, cache_dir=tmp_path / "cache")
    names = [p.name for p in (tmp_path / "cache").iterdir()]
    assert len(calls) == 2 and len(names) == 1 and re.fullmatch(r"images_224_2_[0-9a-f]{16}\.npy", names[0])
    assert np.array_equal(load_images(paths, cache_dir=tmp_path / "cache"), first)


@needs_ham
def test_real_split_has_no_leak_and_uses_all_images():
    df = read_metadata(HAM)
    assert len(df) == 10015
    split = split_by_lesion(df, seed=0)
    _assert_no_leak(df, split)
    counts = split.value_counts(normalize=True)
    assert 0.75 < counts["train"] < 0.85


def _lesions(n_per_class: dict[str, int], images_per_lesion: int = 2) -> pd.DataFrame:
    rows = [{"lesion_id": f"{dx}{i}", "image_id": f"{dx}{i}_{k}", "dx": dx}
            for dx, n in n_per_class.items() for i in range(n) for k in range(images_per_lesion)]
    return pd.DataFrame(rows)


def test_folds_keep_lesions_whole_and_spread_each_class_evenly():
    df = _lesions({"nv": 103, "mel": 21, "df": 7})
    fold = fold_by_lesion(df, 5, seed=0)
    assert set(fold) == set(range(5))
    assert (df.assign(fold=fold).groupby("lesion_id")["fold"].nunique() == 1).all()
    per_class = pd.crosstab(df["dx"], fold) // 2  # lesions of each class in each fold
    assert (per_class.max(axis=1) - per_class.min(axis=1) <= 1).all(), per_class
    sizes = fold.value_counts() // 2
    assert sizes.max() - sizes.min() <= 1  # 131 lesions: 26 or 27 a fold
    assert fold.equals(fold_by_lesion(df, 5, seed=0)) and not fold.equals(fold_by_lesion(df, 5, seed=1))
    with pytest.raises(ValueError, match="at least 2 folds"):
        fold_by_lesion(df, 1)
