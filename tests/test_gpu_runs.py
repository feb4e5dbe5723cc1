"""build/gpu_runs.py: several training runs side by side on a lent GPU machine, and what comes back."""

import json
import re
import shutil
import sys
import tarfile
import time

from tests.conftest import ROOT, fake_ham

sys.path.insert(0, str(ROOT / "build"))

import gpu_runs  # build scripts, found through the path above
import stage_training_data


def test_staged_runs_side_by_side_bring_back_what_calibration_needs(tmp_path, capsys):
    data = fake_ham(tmp_path, ["nv", "mel", "bkl", "bcc", "akiec", "df", "vasc"] * 4, {"images_224": range(28)})
    base = f"{data} --weights none --alpha 0.25 --head-epochs 0 --epochs 1 --batch-size 8"
    stage, runs, out = tmp_path / "stage", tmp_path / "runs", tmp_path / "out"
    assert stage_training_data.main(["--out", str(stage), "--no-wheels", "--", *base.split()]) == 0
    shutil.rmtree(data)  # the machine has no ../shared: the staged parts make it
    assert gpu_runs.main(["--stage", str(stage), "--runs", str(runs), "--out", str(out), "--base", base,
                          "a --seed 0", "b --seed 1 --ema 0.99"]) == 0
    said = capsys.readouterr().out
    assert "| a | finished | 1 |" in said and "| b | finished | 1 |" in said
    assert re.search(r"\| b \| finished \| 1 \|.*\| \d+ \(\d+\) \|$", said, re.MULTILINE)  # s an epoch
    assert (data / "HAM10000_metadata.csv").is_file()
    assert sorted(p.name for p in out.iterdir()) == ["a.tar", "b.tar"]
    with tarfile.open(out / "b.tar") as t:
        # --keep last with --ema: the last epoch's average, not the raw weights of checkpoint.keras
        assert sorted(t.getnames()) == sorted(f"b/{f}" for f in ("last.keras", *gpu_runs.BROUGHT))
        t.extractall(tmp_path / "back", filter="data")
    # without the optimizer's state (Adam's two moments, the moving average): smaller than the run's own
    back = tmp_path / "back" / "b" / "last.keras"
    assert back.stat().st_size < (runs / "b" / "checkpoint.keras").stat().st_size / 2
    from screening.train import main as train

    assert train([*base.split(), "--seed", "1", "--ema", "0.99", "--run", str(tmp_path / "back" / "b"),
                  "--calibrate-only"]) == 0
    assert json.loads((tmp_path / "back" / "b" / "bundle" / "bundle.json").read_text())["training"]["best_epoch"] == 1
    for labels in ("val_labels.csv", "test_labels.csv"):  # what build/ship_default_model.sh scores, from split.csv
        assert (tmp_path / "back" / "b" / labels).read_text() == (runs / "b" / labels).read_text()


def test_runs_still_going_at_the_deadline_are_stopped_and_failures_told(tmp_path):
    logs = {name: tmp_path / f"{name}.log" for name in ("slow", "broken", "quick")}
    commands = {"slow": [sys.executable, "-c", "import time; time.sleep(120)"],
                "broken": [sys.executable, "-c", "raise SystemExit(3)"],
                "quick": [sys.executable, "-c", "print('done')"]}
    start = time.monotonic()
    ended = gpu_runs.run_all(commands, logs, {}, start + 5, memory=0.9)
    assert time.monotonic() - start < 5 + gpu_runs.GRACE_S
    assert ended == {"slow": "stopped at the deadline", "broken": "failed (exit 3)", "quick": "finished"}
    assert logs["quick"].read_text() == "done\n"


def test_parts_go_where_the_manifest_says_and_wheels_are_left_to_install(tmp_path):
    stage = tmp_path / "stage"
    for where, text in (("part1/ham10000/HAM10000_metadata.csv", "m"), ("part2/ham10000/images_224/I.jpg", "i"),
                        ("part2/weights/w.h5", "w"), ("part3/wheels/keras-3-py3-none-any.whl", "k")):
        (stage / where).parent.mkdir(parents=True, exist_ok=True)
        (stage / where).write_text(text)
    manifest = {"data": str(tmp_path / "shared" / "data"), "weights": str(tmp_path / "shared" / "weights" / "w.h5")}
    (stage / "part1" / "stage.json").write_text(json.dumps(manifest))
    assert gpu_runs.merge(stage) == [stage / "part3" / "wheels" / "keras-3-py3-none-any.whl"]
    shared = tmp_path / "shared"
    assert sorted(p.relative_to(shared).as_posix() for p in shared.rglob("*") if p.is_file()) == [
        "data/HAM10000_metadata.csv", "data/images_224/I.jpg", "weights/w.h5"]


def test_epoch_seconds_are_read_from_kerass_log(tmp_path):
    log = tmp_path / "train.log"
    log.write_text("stage head: epochs 1-2, lr 0.001, unfrozen blocks 0\n"
                   "126/126 - 20s - 159ms/step - acc: 0.39 - loss: 1.82 - val_balanced_accuracy: 0.46\n"
                   "Epoch 3/102\n126/126 - 150s - 1s/step - acc: 0.52\n126/126 - 2s - 19ms/step - acc: 0.55\n"
                   "10/10 - 1s - 67ms/step\n")
    assert gpu_runs.epoch_seconds(log) == [20, 150, 2, 1]
    assert gpu_runs.epoch_seconds(tmp_path / "none.log") == []
