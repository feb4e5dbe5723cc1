"""build/stage_training_data.py: what a training command reads, in parts for a lent GPU machine."""

import json
import sys

from tests.conftest import ROOT, fake_ham

sys.path.insert(0, str(ROOT / "build"))

import stage_training_data  # a build script, found through the path above


def test_parts_hold_what_the_command_reads_and_give_it_the_same_rows(tmp_path, capsys):
    held = {"originals_600x450": range(0, 40, 3), "images_224": range(0, 40, 2), "images_200x150": range(40)}
    data = fake_ham(tmp_path, ["nv", "mel", "bkl", "bcc"] * 10, held)
    weights = tmp_path / "imagenet.weights.h5"
    weights.write_bytes(b"w" * 3000)
    out = tmp_path / "stage"
    limit_mib = 0.004  # a few of the small generated images in each part
    options = [str(data), "--train-prefer", "images_224,images_200x150", "--weights", str(weights)]
    argv = ["--out", str(out), "--part-mib", str(limit_mib), "--no-wheels", "--"]
    assert stage_training_data.main([*argv, *options, "--run", str(tmp_path / "run")]) == 0
    said = capsys.readouterr().out
    assert "42 files in" in said and "the same training and validation rows, copy for copy" in said  # + metadata, weights
    chunks = sorted(out.iterdir())
    assert len(chunks) > 2 and f"call {len(chunks)}: carry {out / f'part{len(chunks)}'}" in said
    assert f'gpu_runs.py --stage {out} --base "{" ".join(options)}"' in said  # each run names its own --run
    for chunk in chunks:  # each part within the limit, unless one file alone is larger
        files = [f for f in chunk.rglob("*") if f.is_file() and f.name != "stage.json"]
        assert len(files) == 1 or sum(f.stat().st_size for f in files) <= limit_mib * 2**20
    staged = {f.relative_to(chunk).as_posix() for chunk in chunks for f in chunk.rglob("*") if f.is_file()}
    assert "ham10000/HAM10000_metadata.csv" in staged and f"weights/{weights.name}" in staged
    images = {s.removeprefix("ham10000/") for s in staged if s.startswith("ham10000/") and s.count("/") == 2}
    assert {s.split("/")[0] for s in images} <= {"images_224", "images_200x150", "originals_600x450"}
    assert len({s.rsplit("/", 1)[-1] for s in images}) == 40  # one copy of each image
    assert json.loads((out / "part1" / "stage.json").read_text()) == {"data": str(data), "weights": str(weights)}


def test_parts_count_files_as_a_tar_does_and_leave_room_for_the_tracked_files(tmp_path):
    files = []
    for i in range(4):
        (tmp_path / f"{i}.jpg").write_bytes(b"x" * 100)  # 1,024 bytes in a tar: header and one block
        files.append((tmp_path / f"{i}.jpg", f"ham10000/{i}.jpg"))
    assert [len(c) for c in stage_training_data.parts(files, 2048)] == [2, 2]
    readme = (ROOT / "README.md").stat().st_size  # one of the tracked files that travel with each part
    assert 0 < stage_training_data.room_per_call() < stage_training_data.CALL_BYTES - readme
