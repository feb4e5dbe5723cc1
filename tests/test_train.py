"""The training CLI's argument and input errors: one line, non-zero exit, no traceback."""

import json
import re
import shlex
import subprocess
import sys
from pathlib import Path

import keras
import pandas as pd
import pytest

from screening.errors import UserError
from screening.train import EpochEnd, class_weights, command_for, compile_model, main, parser, prepare_split
from tests.conftest import fake_ham


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--epochs", "-1"], "must be 0 or more"),
        (["--batch-size", "0"], "must be a positive integer"),
        (["--class-weight", "magic"], "invalid choice"),
    ],
)
def test_bad_arguments_exit_2(tmp_path, capsys, argv, message):
    with pytest.raises(SystemExit) as exc:
        main([str(tmp_path), "--run", str(tmp_path / "run"), *argv])
    assert exc.value.code == 2
    assert message in capsys.readouterr().err


def test_missing_data_is_one_line(tmp_path, capsys):
    assert main([str(tmp_path / "nope"), "--run", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "data folder not found" in err


def test_resume_without_checkpoint(tmp_path, capsys):
    assert main([str(tmp_path), "--run", str(tmp_path / "run"), "--resume"]) == 2
    assert "nothing to resume" in capsys.readouterr().err


def test_missing_imagenet_weights_are_named_before_anything_is_decoded_or_written(tmp_path, capsys):
    run = tmp_path / "run"
    assert main([str(tmp_path), "--run", str(run), "--weights", str(tmp_path / "gone.weights.h5")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "ImageNet weights file not found" in err and "--weights PATH" in err
    assert not run.exists()


def test_calibrate_only_needs_a_best_epoch(tmp_path, capsys):
    assert main([str(tmp_path), "--run", str(tmp_path / "run"), "--calibrate-only"]) == 2
    assert "nothing to calibrate" in capsys.readouterr().err


def test_existing_run_is_not_overwritten(tmp_path, capsys):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "checkpoint.keras").write_bytes(b"x")
    assert main([str(tmp_path), "--run", str(tmp_path / "run")]) == 2
    assert "already holds a training run" in capsys.readouterr().err
    assert (tmp_path / "run" / "checkpoint.keras").read_bytes() == b"x"


def test_a_file_as_run_folder_is_one_line_and_kept(tmp_path, capsys):
    """It was ``[Errno 17] File exists``, once the data had been read."""
    run = tmp_path / "notes.txt"
    run.write_text("kept")
    assert main([str(tmp_path), "--run", str(run)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"--run {run} is a file; give a folder for the run" in err
    assert run.read_text() == "kept"


def test_class_weights_favour_rare_classes():
    import numpy as np

    y = np.array([5] * 90 + [4] * 10)
    w = class_weights(y, "balanced")
    assert w[4] > w[5]
    assert np.average([w[k] for k in y]) == pytest.approx(1.0)
    assert class_weights(y, "none") is None


def test_module_runs_as_script():
    out = subprocess.run([sys.executable, "-m", "screening.train", "--help"], capture_output=True, text=True, check=False)
    assert out.returncode == 0 and "--resume" in out.stdout


@pytest.mark.parametrize("warmup", [0, 10])
def test_finetune_rate_warms_up_then_decays(warmup):
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(7)])
    compile_model(model, 1e-4, 0.1, decay_steps=100, warmup_steps=warmup)

    def rate(step: int) -> float:
        model.optimizer.iterations.assign(step)
        return float(model.optimizer.learning_rate)

    assert rate(0) == pytest.approx(0.0 if warmup else 1e-4)
    assert rate(warmup) == pytest.approx(1e-4)
    assert rate(100) == pytest.approx(5e-6, rel=1e-3)  # cosine floor: 5% of the peak


def test_ema_weights_are_validated_and_shipped_raw_weights_resumed(tmp_path):
    """With --ema the epoch's validation and best.keras use the moving average; training and
    checkpoint.keras keep the raw weights and the averages, so --resume continues both."""
    import numpy as np

    rng = np.random.default_rng(0)
    x, y = rng.random((24, 4, 4, 3)).astype("float32"), rng.integers(0, 7, 24)
    model = keras.Sequential([keras.Input((4, 4, 3)), keras.layers.Flatten(), keras.layers.Dense(7)])
    compile_model(model, 0.05, 0.0, ema=0.9)
    seen = {}

    class Capture(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):  # after EpochEnd; fit's end then overwrites with the averages
            seen["raw"] = [np.asarray(v) for v in self.model.trainable_variables]
            seen["average"] = [np.asarray(v) for v in self.model.optimizer._model_variables_moving_average]

    model.fit(x, np.eye(7)[y], epochs=1, batch_size=8, verbose=0,
              callbacks=[EpochEnd(tmp_path, x, y, 8, "finetune"), Capture()])
    raw, average = seen["raw"], seen["average"]
    assert not np.allclose(raw[0], average[0])
    best = keras.saving.load_model(tmp_path / "best.keras", compile=False)
    checkpoint = keras.saving.load_model(tmp_path / "checkpoint.keras")
    for a, b in zip(best.trainable_variables, average):
        np.testing.assert_allclose(np.asarray(a), b)
    for a, b in zip(checkpoint.trainable_variables, raw):
        np.testing.assert_allclose(np.asarray(a), b)
    assert checkpoint.optimizer.use_ema
    for a, b in zip(checkpoint.optimizer._model_variables_moving_average, average):
        np.testing.assert_allclose(np.asarray(a), b)


def test_ema_momentum_out_of_range_is_one_line(tmp_path, capsys):
    assert main([str(tmp_path), "--run", str(tmp_path / "run"), "--ema", "1"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--ema must be in [0, 1)" in err


def test_command_for_rebuilds_the_recipe():
    """The model card's reproduce line parses back to the recipe stored in the bundle."""
    recipe = {k: str(v) if k in ("data", "run") else v for k, v in
              vars(parser().parse_args(["d", "--run", "r", "--lr", "3e-4", "--val-prefer", ""])).items()}
    line = command_for(recipe)
    assert line.startswith("python -m screening.train ../shared/data/ham10000 --run runs/default --lr 0.0003 ")
    assert "--epochs" not in line and "--seed 0" in line and "--split-seed" not in line
    back = vars(parser().parse_args(shlex.split(line)[3:]))
    assert all(back[k] == recipe[k] for k in recipe if k not in ("data", "run", "workers"))


def test_command_for_keeps_the_split_of_recipes_older_than_split_seed():
    """Before --split-seed the lesion split followed --seed: the rebuild line must keep it."""
    assert "--seed 3 --split-seed 3" in command_for({"seed": 3})
    assert "--split-seed" not in command_for({"seed": 0})
    assert command_for({"seed": 3, "split_seed": 0}).endswith("--seed 3")  # 0 is the default


def test_split_takes_each_splits_preferred_copy(tmp_path):
    """Training rows come from --train-prefer's folder, held-out rows from --val-prefer's."""
    data = fake_ham(tmp_path, ["nv", "mel", "bkl", "bcc"] * 10, {"images_224": range(40), "images_200x150": range(40)})
    args = parser().parse_args([str(data), "--run", str(tmp_path / "run"), "--train-prefer", "images_200x150"])
    table = prepare_split(args)
    folder = table["path"].map(lambda p: Path(p).parent.name)
    assert set(folder[table["split"] == "train"]) == {"images_200x150"}
    assert set(folder[table["split"] != "train"]) == {"images_224"}
    for name in ("val", "test"):  # what screening.evaluate reads, lesion ids for its bootstrap
        labels = pd.read_csv(tmp_path / "run" / f"{name}_labels.csv")
        assert labels.equals(table[table["split"] == name][["image_id", "dx", "lesion_id"]].reset_index(drop=True))
    default = prepare_split(parser().parse_args([str(data), "--run", str(tmp_path / "run2")]))
    assert set(default["path"].map(lambda p: Path(p).parent.name)) == {"images_224"}  # best copy


def test_split_depends_on_the_split_seed_only(tmp_path):
    """Another --seed trains differently on the same split, so the hold-out test set stays
    unseen; only --split-seed moves lesions between splits."""
    data = fake_ham(tmp_path, ["nv", "nv", "mel", "mel"] * 20, {"images_224": range(80), "images_200x150": range(80)},
                     images_per_lesion=2)

    def split(*options: str):
        run = tmp_path / f"run{len(list(tmp_path.iterdir()))}"
        return prepare_split(parser().parse_args([str(data), "--run", str(run), *options]))["split"]

    assert split().equals(split("--seed", "1"))
    assert not split().equals(split("--split-seed", "1"))


def test_split_takes_preferred_folders_in_order(tmp_path):
    """--train-prefer A,B: A's copy where there is one, else B's, before the best copy."""
    held = {"originals_600x450": range(0, 40, 3), "images_224": range(0, 40, 2), "images_200x150": range(40)}
    data = fake_ham(tmp_path, ["nv", "mel", "bkl", "bcc"] * 10, held)
    args = parser().parse_args([str(data), "--run", str(tmp_path / "run"), "--train-prefer",
                                "images_224, images_200x150", "--val-prefer", ""])
    table = prepare_split(args).set_index("image_id")
    train = table[table["split"] == "train"]
    want = {f"ISIC_{i:07d}": "images_224" if i % 2 == 0 else "images_200x150" for i in range(40)}
    assert {k: Path(p).parent.name for k, p in train["path"].items()} == {k: want[k] for k in train.index}
    held_out = table[table["split"] != "train"]  # best copy: originals first
    assert {Path(p).parent.name for k, p in held_out["path"].items() if int(k[5:]) % 3 == 0} == {"originals_600x450"}


def test_batch_norm_train_reaches_the_fine_tuned_blocks(tmp_path):
    """--batch-norm train: the fine-tuned blocks' batch norm re-estimates its statistics on the
    training images, the stem's keeps its own, and the recipe records the choice."""
    import numpy as np

    from screening.model import backbone_of

    data = fake_ham(tmp_path, ["nv", "mel", "bkl", "bcc", "akiec", "df", "vasc"] * 4, {"images_224": range(28)})
    run = tmp_path / "run"
    assert main([str(data), "--run", str(run), "--weights", "none", "--alpha", "0.25", "--head-epochs", "0",
                 "--epochs", "1", "--unfreeze-blocks", "1", "--batch-norm", "train", "--batch-size", "8",
                 "--verbose", "0"]) == 0
    backbone = backbone_of(keras.saving.load_model(run / "checkpoint.keras"))
    mean = lambda name: np.asarray(backbone.get_layer(name).moving_mean)
    assert backbone.get_layer("conv_pw_13_bn").trainable and np.abs(mean("conv_pw_13_bn")).max() > 0
    assert not backbone.get_layer("conv_pw_12_bn").trainable and np.abs(mean("conv_pw_12_bn")).max() == 0
    recipe = json.loads((run / "bundle" / "bundle.json").read_text())["training"]["recipe"]
    assert recipe["batch_norm"] == "train" and "--batch-norm train" in command_for(recipe)


def test_a_disk_filling_during_training_is_one_line_and_resume_can_go_on(tmp_path, capsys, monkeypatch):
    """Each epoch's checkpoint and state are whole or as they were: a state.json cut short by a
    full disk stopped --resume with a JSON error."""
    import errno

    data = fake_ham(tmp_path, ["nv", "mel", "bkl", "bcc", "akiec", "df", "vasc"] * 4, {"images_224": range(28)})
    run, saves, real_save = tmp_path / "run", [], keras.Model.save

    def disk_fills(model, path, *args, **kwargs):  # the second file the run writes: epoch 2's checkpoint
        saves.append(path)
        if len(saves) == 2:
            raise OSError(errno.ENOSPC, "No space left on device")
        real_save(model, path, *args, **kwargs)

    monkeypatch.setattr(keras.Model, "save", disk_fills)
    assert main([str(data), "--run", str(run), "--weights", "none", "--alpha", "0.25", "--head-epochs", "0",
                 "--epochs", "2", "--unfreeze-blocks", "1", "--batch-size", "8", "--verbose", "0"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and re.search(r"cannot write \S+/checkpoint\.keras: No space left on device",
                                             err), err
    assert json.loads((run / "state.json").read_text())["epoch"] == 1  # epoch 1's, whole
    assert not [p.name for p in run.iterdir() if ".tmp" in p.name]  # no half-written file left


def test_folds_validate_on_one_fold_and_leave_the_test_split_alone(tmp_path):
    data = fake_ham(tmp_path, ["nv", "mel", "bkl", "bcc", "akiec", "df", "vasc"] * 30, {"images_224": range(210)},
                    images_per_lesion=2)
    plain = prepare_split(parser().parse_args([str(data), "--run", str(tmp_path / "plain")]))
    folds = [prepare_split(parser().parse_args([str(data), "--run", str(tmp_path / f"f{k}"), "--folds", "3",
                                                "--fold", str(k)])) for k in range(3)]
    test = set(plain.query("split == 'test'")["image_id"])
    vals = [set(f.query("split == 'val'")["image_id"]) for f in folds]
    for f, val in zip(folds, vals):
        assert set(f.query("split == 'test'")["image_id"]) == test
        assert set(f.query("split == 'train'")["image_id"]) == set(plain["image_id"]) - test - val
    assert set.union(*vals) == set(plain["image_id"]) - test and sum(map(len, vals)) == len(set.union(*vals))
    assert all(64 <= len(v) <= 66 for v in vals)  # 98 lesions of 2 images outside the test split, in 3 folds


def test_a_fold_out_of_range_is_one_line(tmp_path, capsys):
    data = fake_ham(tmp_path, ["nv", "mel"] * 10, {"images_224": range(20)})
    run = tmp_path / "run"
    assert main([str(data), "--run", str(run), "--weights", "none", "--folds", "3", "--fold", "3"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--fold must be 0 to 2 with --folds 3, got 3" in err and not run.exists()
    assert main([str(data), "--run", str(run), "--weights", "none", "--fold", "1"]) == 2
    assert "--fold needs --folds" in capsys.readouterr().err


def test_small_images_then_full_size_and_the_last_epoch_shipped_without_augmentation(tmp_path):
    """Most epochs at --image-size, resumed into --final-epochs at 224 px; the bundle is the last
    epoch's weights at 224 px, with no augmentation layer, and lists the images it trained on."""
    import numpy as np

    from screening.bundle import load_bundle

    data = fake_ham(tmp_path, ["nv", "mel", "bkl", "bcc", "akiec", "df", "vasc"] * 4, {"images_224": range(28)})
    run = tmp_path / "run"
    small = [str(data), "--run", str(run), "--weights", "none", "--alpha", "0.25", "--head-epochs", "1", "--epochs",
             "1", "--image-size", "64", "--unfreeze-blocks", "1", "--batch-size", "8", "--verbose", "0"]
    assert main(small) == 0
    assert keras.saving.load_model(run / "checkpoint.keras").input_shape[1:] == (64, 64, 3)
    assert not (run / "best.keras").exists()  # --keep last: no model is chosen on validation
    assert main([*small, "--resume", "--final-epochs", "1"]) == 0  # the stop was at the stage's boundary
    history = pd.read_csv(run / "history.csv")
    assert list(history["epoch"]) == [0, 1, 2]
    checkpoint = keras.saving.load_model(run / "checkpoint.keras")
    assert checkpoint.input_shape[1:] == (224, 224, 3)
    assert json.loads((run / "state.json").read_text())["stage"] == "final"
    model, meta = load_bundle(run / "bundle")
    assert model.input_shape[1:] == (224, 224, 3) and "augmentation" not in [layer.name for layer in model.layers]
    for shipped, last in zip(model.get_weights(), checkpoint.get_weights()):
        np.testing.assert_array_equal(shipped, last)
    split = pd.read_csv(run / "split.csv")
    assert meta["training"]["train_image_ids"] == sorted(split.query("split == 'train'")["image_id"])
    assert meta["training"]["kept_epoch"] == 3 and meta["training"]["recipe"]["final_epochs"] == 1
    assert {p.name.split("_")[1] for p in (run / "cache").glob("*.npy")} == {"64", "224"}


def test_the_levers_reach_the_trained_model(tmp_path, monkeypatch):
    """--sampling balanced, --random-resized-crop, --colour-jitter and --colour-constancy train
    end to end; the crop and jitter are training layers, colour constancy ships."""
    from screening import train
    from screening.bundle import load_bundle
    from screening.sampling import BalancedBatches

    drawn = []

    class Counted(BalancedBatches):
        def __getitem__(self, index):
            drawn.append(index)
            return super().__getitem__(index)

    monkeypatch.setattr(train, "BalancedBatches", Counted)

    data = fake_ham(tmp_path, ["nv", "mel", "bkl", "bcc", "akiec", "df", "vasc"] * 4, {"images_224": range(28)})
    run = tmp_path / "run"
    assert main([str(data), "--run", str(run), "--weights", "none", "--alpha", "0.25", "--head-epochs", "0",
                 "--epochs", "1", "--image-size", "64", "--unfreeze-blocks", "1", "--batch-size", "8", "--verbose", "0",
                 "--sampling", "balanced", "--class-weight", "none", "--random-resized-crop", "0.5",
                 "--colour-jitter", "0.2", "--colour-constancy", "shades_of_gray"]) == 0
    augmentation = keras.saving.load_model(run / "checkpoint.keras").get_layer("augmentation")
    assert {"resized_crop", "colour_jitter"} <= {layer.name for layer in augmentation.layers}
    assert drawn  # the balanced batches were what fit trained on
    model, meta = load_bundle(run / "bundle")
    assert model.layers[1].name == "colour_constancy" and "Shades-of-Gray" in meta["preprocessing"]["model_input"]
    assert meta["training"]["recipe"]["sampling"] == "balanced"
    assert len(pd.read_csv(run / "history.csv")) == 1


def test_keep_best_chooses_among_the_full_size_epochs_and_a_run_keeps_its_keep(tmp_path, capsys):
    """A best epoch at 128 px is not compared with those at 224 px; and a run continues with the
    --keep it started with (a --keep last run has no best.keras to ship)."""
    data = fake_ham(tmp_path, ["nv", "mel", "bkl", "bcc", "akiec", "df", "vasc"] * 4, {"images_224": range(28)})
    run = tmp_path / "run"
    argv = [str(data), "--run", str(run), "--weights", "none", "--alpha", "0.25", "--head-epochs", "0", "--epochs",
            "1", "--image-size", "64", "--final-epochs", "1", "--unfreeze-blocks", "1", "--batch-size", "8",
            "--verbose", "0", "--keep", "best"]
    assert main(argv) == 0
    state = json.loads((run / "state.json").read_text())
    assert state["best_epoch"] == 2 and state["keep"] == "best"  # the final stage's epoch, whatever epoch 1 scored
    assert keras.saving.load_model(run / "best.keras").input_shape[1:] == (224, 224, 3)
    assert main([*argv[:-2], "--resume"]) == 2  # --keep last by default
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "was trained with --keep best; give --keep best to continue" in err
    from screening.train import check_keep

    state = json.loads((run / "state.json").read_text())
    del state["keep"]  # a state written before runs recorded it: the files tell
    (run / "state.json").write_text(json.dumps(state))
    with pytest.raises(UserError, match="was trained with --keep best"):
        check_keep(parser().parse_args([*argv[:-2], "--resume"]))
    (run / "best.keras").unlink()
    check_keep(parser().parse_args([*argv[:-2], "--resume"]))  # no best.keras: a --keep last run


def test_a_resumed_run_draws_new_augmentation_and_reads_an_older_history(tmp_path):
    """Keras saves a seed generator's seed but not how far it drew: a resumed run repeated its
    first epochs' draws. And a history from before the AUROC column gets it, so the rows a resumed
    run appends line up."""
    import numpy as np

    from screening.model import build_model
    from screening.train import SEED_STRIDE, reseed, upgrade_history

    model = build_model(None, alpha=0.25, seed=0, size=32)
    states = [v for v in model.non_trainable_variables if v.path.endswith("seed_generator_state")]
    seeds = [int(np.asarray(v)[0]) for v in states]
    reseed(model, 7)
    assert [list(np.asarray(v)) for v in states] == [[s, 7 * SEED_STRIDE] for s in seeds]
    history = tmp_path / "history.csv"
    history.write_text("epoch,acc,loss,val_acc,val_balanced_accuracy,val_loss\n0,0.5,1.0,0.4,0.3,1.2\n")
    upgrade_history(history)
    assert history.read_text().splitlines()[0] == ("epoch,acc,loss,val_acc,val_balanced_accuracy,"
                                                    "val_loss,val_malignant_auroc")
    upgrade_history(history)  # already there: unchanged
    assert pd.read_csv(history).shape == (1, 7)
