"""build/stage_training_data.py: what a training command reads, in parts for a lent GPU machine."""

import sys

from tests.conftest import ROOT
from tests.test_train import _fake_ham

sys.path.insert(0, str(ROOT / "build"))

import stage_training_data  # a build script, found through the path above


def test_parts_hold_what_the_command_reads_and_give_it_the_same_rows(tmp_path, capsys):
    held = {"originals_600x450": range(0, 40, 3), "images_224": range(0, 40, 2), "images_200x150": range(40)}
    data = _fake_ham(tmp_path, ["nv", "mel", "bkl", "bcc"] * 10, held)
    out = tmp_path / "stage"
    limit_mib = 0.004  # a few of the small generated images in each part
    options = [str(data), "--run", str(tmp_path / "run"), "--train-prefer", "images_224,images_200x150"]
    assert stage_training_data.main(["--out", str(out), "--part-mib", str(limit_mib), "--", *options]) == 0
    said = capsys.readouterr().out
    assert "41 files in" in said and "the same training and validation rows, copy for copy" in said  # 40 + metadata
    chunks = sorted(out.iterdir())
    assert len(chunks) > 2 and f"call {len(chunks)}: carry {out / f'part{len(chunks)}'}" in said
    for chunk in chunks:  # each part within the limit, unless one file alone is larger
        files = [f for f in chunk.rglob("*") if f.is_file()]
        assert len(files) == 1 or sum(f.stat().st_size for f in files) <= limit_mib * 2**20
    staged = {f.relative_to(chunk / "ham10000").as_posix() for chunk in chunks for f in chunk.rglob("*") if f.is_file()}
    assert "HAM10000_metadata.csv" in staged
    assert {s.split("/")[0] for s in staged if "/" in s} <= {"images_224", "images_200x150", "originals_600x450"}
    assert len({s.rsplit("/", 1)[-1] for s in staged}) == 41  # one copy of each image
