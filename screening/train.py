"""Training CLI: ``python -m screening.train DATA_DIR --run runs/NAME``.

Staged fine-tuning of an ImageNet MobileNet on HAM10000: the head alone first, then the
last ``--unfreeze-blocks`` blocks, both at ``--image-size``, then ``--final-epochs`` at the
shipped 224 px (training smaller and fine-tuning at the test size, Touvron et al. 2019, costs
a fraction of the CPU time). Images are decoded once into a cached uint8 array; augmentation
runs inside the compiled step. Every epoch writes ``checkpoint.keras`` and a row of
``history.csv``; ``--resume`` continues from the last checkpoint. At the end the last epoch
(or with ``--keep best`` the best on validation) is calibrated on the validation split
(temperature, malignancy scaling, referral threshold) and saved as a bundle in ``RUN/bundle``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shlex
import sys
from collections.abc import Iterator
from pathlib import Path

import jax
import keras
import numpy as np
import pandas as pd

from screening import quality
from screening.augmentation import DEFAULT_AUGMENTATION
from screening.backend import use_training_flags
from screening.bundle import default_meta, save_bundle
from screening.calibration import fit_malignancy_scaling, fit_temperature, nll, threshold_for_sensitivity
from screening.cli import described, nonneg_int, positive_int, run_cli
from screening.data import fold_by_lesion, labels_to_indices, load_images, parse_prefer, read_metadata, split_by_lesion
from screening.errors import UserError
from screening.files import check_output_folder, write_atomically
from screening.inference import batched_logits, forward_fn
from screening.info import CLASS_CODES, DATASET
from screening.metrics import (
    auroc,
    balanced_accuracy,
    calibration_errors,
    confusion_matrix,
    is_malignant,
    malignancy,
    softmax,
    summary,
)
from screening.model import build_model, has_colour_constancy, inference_graph, resized, set_trainable
from screening.preprocessing import INPUT_SIZE
from screening.sampling import BalancedBatches

DEFAULT_WEIGHTS = "../shared/weights/mobilenet_1_0_224_imagenet_no_top.weights.h5"
CHECKPOINT, BEST, LAST, STATE = "checkpoint.keras", "best.keras", "last.keras", "state.json"
# new draws for each resumed epoch: a reloaded checkpoint's seed generators start again from 0
SEED_STRIDE = 2**20
KERAS_TMP = ".tmp.keras"  # how a checkpoint being written ends: Keras saves only to a name ending in .keras


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="screening-train", description=described(__doc__),
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("data", type=Path, help="HAM10000 folder (HAM10000_metadata.csv and image folders)")
    p.add_argument("--run", type=Path, required=True, help="run folder for checkpoints, history and the bundle")
    p.add_argument("--resume", action="store_true", help="continue from RUN/checkpoint.keras")
    p.add_argument("--calibrate-only", action="store_true",
                   help="train no further: calibrate the kept model (--keep) on RUN's validation split and write "
                        "the bundle (a run trained on another machine, or stopped early)")
    p.add_argument("--weights", default=DEFAULT_WEIGHTS,
                   help="ImageNet weights: a .weights.h5 path, 'imagenet' (download) or 'none'")
    p.add_argument("--head-epochs", type=nonneg_int, default=2, help="epochs with the backbone frozen")
    p.add_argument("--epochs", type=nonneg_int, default=16, help="fine-tuning epochs after the head stage")
    p.add_argument("--image-size", type=positive_int, default=INPUT_SIZE,
                   help=f"input side in pixels for the head and fine-tuning epochs (the shipped model takes {INPUT_SIZE})")
    p.add_argument("--final-epochs", type=nonneg_int, default=0,
                   help=f"epochs at {INPUT_SIZE} px after those, the same blocks trained, at --final-lr")
    p.add_argument("--final-lr", type=float, default=3e-5,
                   help="peak learning rate of the final epochs (half an epoch of warm-up, then cosine-decayed)")
    p.add_argument("--keep", choices=("last", "best"), default="last",
                   help="what is calibrated and shipped: the last epoch, or the epoch with the best validation "
                        "balanced accuracy (whose validation figures then overstate it)")
    p.add_argument("--unfreeze-blocks", type=nonneg_int, default=8, help="backbone blocks (of 13) to fine-tune")
    p.add_argument("--batch-size", type=positive_int, default=32, help="images per training step")
    p.add_argument("--head-lr", type=float, default=1e-3, help="learning rate of the head stage")
    p.add_argument("--lr", type=float, default=1e-4, help="peak fine-tuning learning rate (then cosine-decayed)")
    p.add_argument("--warmup-epochs", type=float, default=1.0,
                   help="fine-tuning epochs over which the rate rises linearly from zero")
    p.add_argument("--ema", type=float, default=0.0,
                   help="in the fine-tuning stage, keep an exponential moving average of the weights with "
                        "this momentum per step (e.g. 0.999) and validate, select and ship it; 0 is off")
    p.add_argument("--batch-norm", choices=("frozen", "train"), default="frozen",
                   help="batch normalisation in the fine-tuned blocks: frozen at ImageNet statistics, or trained "
                        "(batch statistics in training, moving statistics re-estimated)")
    p.add_argument("--colour-constancy", choices=("none", "shades_of_gray"), default="none",
                   help="normalise each image's colour (Shades of Gray, p=6) as the model's first layer, in "
                        "training and inference alike")
    p.add_argument("--label-smoothing", type=float, default=0.1, help="share of each label spread over all classes")
    p.add_argument("--dropout", type=float, default=0.2, help="dropout before the classifier")
    p.add_argument("--class-weight", choices=("balanced", "sqrt", "none"), default="balanced",
                   help="loss weight per class: inverse frequency, its square root, or none")
    p.add_argument("--sampling", choices=("shuffle", "balanced"), default="shuffle",
                   help="each epoch a shuffled pass over the images, or batches drawn with every class equally "
                        "likely (then usually with --class-weight none)")
    p.add_argument("--random-resized-crop", type=float, default=0.0, metavar="AREA",
                   help="augment with random crops of AREA to 1 of the image's area, aspect 3/4 to 4/3 (0 is off)")
    p.add_argument("--colour-jitter", type=float, default=0.0, metavar="STRENGTH",
                   help="augment with random contrast and saturation in 1 - STRENGTH to 1 + STRENGTH (0 is off)")
    p.add_argument("--train-prefer", default="",
                   help="image folder(s), comma-separated, preferred in that order for training copies "
                        "('' for the best copy)")
    p.add_argument("--val-prefer", default="images_224",
                   help="image folder(s), comma-separated, preferred in that order for validation/test "
                        "copies ('' for the best copy)")
    p.add_argument("--target-sensitivity", type=float, default=0.90,
                   help="malignant sensitivity the referral threshold is chosen for on validation")
    p.add_argument("--limit", type=positive_int, help="train on at most N images (quick runs, tests)")
    p.add_argument("--val-limit", type=positive_int, help="validate on at most N images")
    p.add_argument("--alpha", type=float, default=1.0, help="MobileNet width multiplier")
    p.add_argument("--seed", type=int, default=0, help="initialisation, augmentation and batch order")
    p.add_argument("--split-seed", type=int, default=0,
                   help="lesion split into train/val/test; keep it fixed so that the hold-out test set stays "
                        "held out across runs")
    p.add_argument("--folds", type=nonneg_int, default=0,
                   help="cross-validation: split the non-test lesions into this many folds (by lesion, stratified, "
                        "drawn by --split-seed) and validate on --fold; 0 keeps the train/val split")
    p.add_argument("--fold", type=nonneg_int, default=0, help="the fold validated on, 0 to --folds minus 1")
    p.add_argument("--workers", type=positive_int, default=os.cpu_count() or 2, help="image decoding threads")
    p.add_argument("--cache", type=Path, help="folder for decoded-image caches (default RUN/cache)")
    p.add_argument("--verbose", type=int, choices=(0, 1, 2), help="Keras progress: 1 bar, 2 line per epoch")
    return p


# Options not stored in the bundle's recipe, and those stored but not part of what the
# model is (where or how fast a run goes).
_NOT_STORED = ("resume", "calibrate_only", "verbose")
_NOT_RECIPE = ("data", "run", "workers", "cache", *_NOT_STORED)


def split_seed(recipe: dict) -> int:
    """A stored recipe's lesion-split seed: before ``--split-seed`` existed, ``--seed`` drew the split."""
    return recipe.get("split_seed", recipe.get("seed", 0))


def command_for(recipe: dict, data: str = "../shared/data/ham10000", run: str = "runs/default") -> str:
    """The training command that rebuilds a bundle's recipe: only options that differ from
    today's defaults are spelled out, plus the seed, so the line stays true when defaults move."""
    words = ["python -m screening.train", data, "--run", run]
    # before --keep existed the best epoch on validation was shipped
    recipe = {"keep": "best", **recipe, "split_seed": split_seed(recipe)}
    for action in parser()._actions:
        if action.dest in _NOT_RECIPE or action.dest not in recipe or not action.option_strings:
            continue
        value = recipe[action.dest]
        if value != action.default or action.dest == "seed":
            words += [action.option_strings[0], shlex.quote(str(value))]
    return " ".join(words)


def class_weights(y: np.ndarray, mode: str) -> dict[int, float] | None:
    if mode == "none":
        return None
    counts = np.bincount(y, minlength=len(CLASS_CODES)).astype(float)
    w = np.where(counts > 0, counts.sum() / (len(counts) * np.maximum(counts, 1)), 0.0)
    if mode == "sqrt":
        w = np.sqrt(w)
    w = w / (w * counts).sum() * counts.sum()  # mean weight per sample stays 1
    return {i: float(v) for i, v in enumerate(w)}


def subsample(df: pd.DataFrame, limit: int | None, seed: int) -> pd.DataFrame:
    """At most ``limit`` rows, keeping every class present (for quick runs)."""
    if limit is None or limit >= len(df):
        return df
    per_class = max(1, limit // df["dx"].nunique())
    shuffled = df.sample(frac=1.0, random_state=seed)
    head = shuffled[shuffled.groupby("dx").cumcount() < per_class]
    rest = shuffled.drop(head.index).head(max(0, limit - len(head)))
    return pd.concat([head, rest]).sort_index()


def prepare_split(args: argparse.Namespace) -> pd.DataFrame:
    """The run's split table (written once, reused on resume so the split never drifts)."""
    path = args.run / "split.csv"
    if (args.resume or args.calibrate_only) and path.is_file():
        table = pd.read_csv(path, dtype={"split": str})
    else:
        table = split_table(args)
        args.run.mkdir(parents=True, exist_ok=True)
        table.to_csv(path, index=False)
    for name in ("val", "test"):  # from split.csv too: a run brought back from a lent machine has that alone
        table[table["split"] == name][["image_id", "dx", "lesion_id"]].to_csv(args.run / f"{name}_labels.csv",
                                                                             index=False)
    return table


def split_table(args: argparse.Namespace) -> pd.DataFrame:
    """Each image's split and the copy of it the run reads, from the recipe's options alone
    (``build/stage_training_data.py`` stages those files for a lent GPU machine)."""
    best = read_metadata(args.data, prefer=parse_prefer(args.train_prefer))
    preferred = read_metadata(args.data, prefer=parse_prefer(args.val_prefer))
    best["split"] = split_by_lesion(best, seed=args.split_seed)
    if args.folds:  # the test split stays as it is; the other lesions are dealt into folds
        if args.fold >= args.folds:
            raise UserError(f"--fold must be 0 to {args.folds - 1} with --folds {args.folds}, got {args.fold}")
        pool = best["split"] != "test"
        fold = fold_by_lesion(best[pool], args.folds, seed=args.split_seed)
        best.loc[pool, "split"] = np.where(fold == args.fold, "val", "train")
    held_out = best["split"] != "train"
    best.loc[held_out, "path"] = preferred.loc[held_out, "path"]
    train = subsample(best[best["split"] == "train"], args.limit, args.seed)
    val = subsample(best[best["split"] == "val"], args.val_limit, args.split_seed)
    test = best[best["split"] == "test"]
    return pd.concat([train, val, test])[["lesion_id", "image_id", "dx", "split", "path"]]


class EpochEnd(keras.callbacks.Callback):
    """Validation metrics into the logs, then checkpoint, best model and state.

    Validation runs here, once per epoch, rather than through ``fit(validation_data=...)``:
    one pass gives loss, accuracy, the balanced accuracy that picks the best epoch, and the
    malignant AUROC (``screening.cv`` compares recipes by both).
    """

    def __init__(self, run: Path, x_val: np.ndarray, y_val: np.ndarray, batch_size: int, stage: str,
                 keep: str = "best"):
        super().__init__()
        self.run, self.x_val, self.y_val, self.batch_size, self.stage = run, x_val, y_val, batch_size, stage
        self.keep = keep
        self.forward = None

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        logs = logs if logs is not None else {}
        if self.forward is None:
            self.forward = forward_fn(self.model)
        state = _read_state(self.run)
        with ema_weights(self.model):
            logits = batched_logits(self.forward, self.x_val, self.batch_size)
            pred = logits.argmax(axis=1)
            logs["val_loss"] = nll(logits, self.y_val, 1.0)
            logs["val_acc"] = float(np.mean(pred == self.y_val))
            logs["val_balanced_accuracy"] = balanced_accuracy(confusion_matrix(self.y_val, pred))
            logs["val_malignant_auroc"] = auroc(is_malignant(self.y_val), malignancy(softmax(logits)))
            if logs["val_balanced_accuracy"] > state.get("best", -1.0):
                if self.keep == "best":  # a model a file, so only where it may be shipped
                    write_atomically(self.run / BEST, self.model.save, suffix=KERAS_TMP)
                state.update(best=logs["val_balanced_accuracy"], best_epoch=epoch + 1)
            if self.keep == "last" and getattr(self.model.optimizer, "use_ema", False):  # the average is shipped
                write_atomically(self.run / LAST, self.model.save, suffix=KERAS_TMP)
        write_atomically(self.run / CHECKPOINT, self.model.save, suffix=KERAS_TMP)  # the training weights, for --resume
        state.update(epoch=epoch + 1, stage=self.stage, keep=self.keep)
        # whole or as it was: one cut short by a full disk or a kill would stop --resume
        write_atomically(self.run / STATE, lambda tmp: tmp.write_text(json.dumps(state, indent=2)))


@contextlib.contextmanager
def ema_weights(model: keras.Model) -> Iterator[None]:
    """Inside, the model holds its optimizer's moving averages of the weights (if it keeps any).

    Swapped in place, as ``keras.callbacks.SwapEMAWeights`` does, so that validation, the best
    model and its bundle are the averaged weights while training and the resume checkpoint
    keep the raw ones.
    """
    optimizer = model.optimizer
    if not getattr(optimizer, "use_ema", False):
        yield
        return

    def swap() -> None:
        for var, average in zip(optimizer._trainable_variables, optimizer._model_variables_moving_average):
            raw = keras.ops.convert_to_numpy(var)
            var.assign(average)
            average.assign(raw)

    swap()
    try:
        yield
    finally:
        swap()


def _read_state(run: Path) -> dict:
    path = run / STATE
    return json.loads(path.read_text()) if path.is_file() else {}


def compile_model(model: keras.Model, lr: float, smoothing: float, decay_steps: int = 0,
                  warmup_steps: int = 0, ema: float = 0.0) -> None:
    """Adam with label-smoothed cross-entropy, keeping a moving average of the weights if ``ema``.

    With ``decay_steps`` the rate warms up linearly from zero over ``warmup_steps`` (Adam's
    first, unscaled steps are what knocked a pretrained backbone over at higher rates),
    then decays along a cosine over the rest.
    """
    if decay_steps:
        warmup = min(warmup_steps, decay_steps - 1)
        lr = keras.optimizers.schedules.CosineDecay(0.0 if warmup else lr, decay_steps - warmup, alpha=0.05,
                                                    warmup_target=lr if warmup else None, warmup_steps=warmup)
    model.compile(
        optimizer=keras.optimizers.Adam(lr, use_ema=ema > 0, ema_momentum=ema or 0.99),  # 0.99: unused
        loss=keras.losses.CategoricalCrossentropy(from_logits=True, label_smoothing=smoothing),
        metrics=[keras.metrics.CategoricalAccuracy(name="acc")],
    )


def augmentation_config(args: argparse.Namespace) -> dict:
    """The recipe's augmentation: the defaults, and the levers it turns on."""
    return {**DEFAULT_AUGMENTATION, "crop": args.random_resized_crop, "jitter": args.colour_jitter}


def stages(args: argparse.Namespace, steps: int) -> list[tuple[str, int, float, int, int, int]]:
    """(name, last epoch, learning rate, blocks trained, decay steps, input size) per stage."""
    out = [("head", args.head_epochs, args.head_lr, 0, 0, args.image_size),
           ("finetune", args.head_epochs + args.epochs, args.lr, args.unfreeze_blocks, steps * args.epochs,
            args.image_size)]
    if args.final_epochs:
        out.append(("final", args.head_epochs + args.epochs + args.final_epochs, args.final_lr, args.unfreeze_blocks,
                    steps * args.final_epochs, INPUT_SIZE))
    return out


def stage_seed(seed: int, stage: int) -> int:
    """The seed of a stage's new augmentation and dropout draws (a stage at another size
    builds its model anew), apart from the first stage's and from other ``--seed`` values."""
    return int(np.random.SeedSequence([seed, stage]).generate_state(1)[0])


def kept_model(args: argparse.Namespace) -> Path:
    """The file ``--keep`` ships: the best epoch's, or the last epoch's (its weights' moving
    average where the run keeps one)."""
    if args.keep == "best":
        return args.run / BEST
    return args.run / LAST if (args.run / LAST).is_file() else args.run / CHECKPOINT


def check_keep(args: argparse.Namespace) -> None:
    """A run continues with the ``--keep`` it was started with: a run started with --keep last
    has no best.keras to ship. A state that does not say is read from the files: runs from
    before --keep kept their best epoch and wrote best.keras from their first epoch on."""
    state = _read_state(args.run)
    started = state.get("keep") or (("best" if (args.run / BEST).is_file() else "last") if state else None)
    if started is not None and started != args.keep:
        raise UserError(f"{args.run} was trained with --keep {started}; give --keep {started} to continue or "
                        "calibrate it")


def forget_best(run: Path) -> None:
    """Entering a stage at another size: the best so far was measured at the other size."""
    state = _read_state(run)
    if state.pop("best", None) is not None:
        state.pop("best_epoch", None)
        write_atomically(run / STATE, lambda tmp: tmp.write_text(json.dumps(state, indent=2)))


def reseed(model: keras.Model, epoch: int) -> None:
    """Move every seed generator of a reloaded checkpoint to a stream of its own for ``epoch``:
    Keras saves their seeds but not how far they had drawn, and a resumed run would repeat its
    first epochs' augmentation and dropout."""
    for variable in model.non_trainable_variables:
        if variable.path.endswith("seed_generator_state"):
            seed = keras.ops.convert_to_numpy(variable)[0]
            variable.assign(np.array([seed, epoch * SEED_STRIDE], dtype=variable.dtype))


def upgrade_history(path: Path) -> None:
    """A history.csv from before the malignant AUROC was logged gets that column (empty), so
    that the rows a resumed run appends (Keras writes the epoch, then the names in sorted
    order) line up with its header."""
    if not path.is_file():
        return
    table = pd.read_csv(path)
    if "val_malignant_auroc" not in table.columns:
        table["val_malignant_auroc"] = np.nan
        table[["epoch", *sorted(c for c in table.columns if c != "epoch")]].to_csv(path, index=False)


def train(args: argparse.Namespace) -> Path:
    keras.utils.set_random_seed(args.seed)
    if not 0.0 < args.target_sensitivity <= 1.0:
        raise UserError(f"--target-sensitivity must be in (0, 1], got {args.target_sensitivity}")
    if not 0.0 <= args.ema < 1.0:
        raise UserError(f"--ema must be in [0, 1), got {args.ema}")
    if args.folds == 1:
        raise UserError("--folds must be 0 (the train/val split) or at least 2")
    if args.folds and args.fold >= args.folds or args.fold and not args.folds:
        raise UserError(f"--fold must be 0 to {args.folds - 1} with --folds {args.folds}, got {args.fold}"
                        if args.folds else "--fold needs --folds")
    if args.sampling == "balanced" and args.class_weight != "none":
        print(f"note: --sampling balanced with --class-weight {args.class_weight} corrects for the classes' sizes "
              "twice", file=sys.stderr)
    if not 0.0 <= args.random_resized_crop < 1.0 or not 0.0 <= args.colour_jitter < 1.0:
        raise UserError("--random-resized-crop and --colour-jitter must be in [0, 1)")
    if not 32 <= args.image_size <= INPUT_SIZE:
        raise UserError(f"--image-size must be 32 to {INPUT_SIZE}, got {args.image_size}")
    check_output_folder(args.run, "--run", "the run")
    if args.resume or args.calibrate_only:
        check_keep(args)
    kept = kept_model(args)
    if args.calibrate_only and not kept.is_file():
        raise FileNotFoundError(f"nothing to calibrate: {kept} does not exist")
    if args.resume and not args.calibrate_only and not (args.run / CHECKPOINT).is_file():
        raise FileNotFoundError(f"nothing to resume: {args.run / CHECKPOINT} does not exist")
    if not (args.resume or args.calibrate_only) and (args.run / CHECKPOINT).exists():
        raise FileExistsError(f"{args.run} already holds a training run; use --resume or another --run")
    weights = None if args.weights == "none" else args.weights
    if not (args.resume or args.calibrate_only) and weights not in (None, "imagenet") and not Path(weights).is_file():
        raise UserError(f"ImageNet weights file not found: {weights} (the default assumes the repository root as "
                        "the current folder, with ../shared beside it; or pass --weights PATH)")  # before minutes of decoding
    table = prepare_split(args)
    cache = args.cache or args.run / "cache"
    tr, va = table[table["split"] == "train"], table[table["split"] == "val"]
    images: dict[tuple[str, int], np.ndarray] = {}

    def decoded(part: pd.DataFrame, name: str, size: int) -> np.ndarray:
        """The ``name`` images at ``size`` px, decoded once (and cached on disk)."""
        if (name, size) not in images:
            print(f"decoding {len(part)} {name} images at {size} px (cached in {cache}) ...", flush=True)
            images[name, size] = load_images(list(part["path"]), args.workers, cache, size)
        return images[name, size]

    y_tr, y_va = labels_to_indices(tr["dx"]), labels_to_indices(va["dx"])
    if args.calibrate_only:
        return finalize(args, decoded(va, "validation", INPUT_SIZE), y_va, tr)
    onehot = np.eye(len(CLASS_CODES), dtype="float32")

    state = _read_state(args.run) if args.resume else {}
    done = state.get("epoch", 0)
    plan = stages(args, -(-len(tr) // args.batch_size))
    if args.resume:
        model = keras.saving.load_model(args.run / CHECKPOINT)
        reseed(model, done)
    else:
        model = build_model(weights, args.alpha, args.dropout, augmentation_config(args), seed=args.seed,
                            size=args.image_size, colour_constancy=args.colour_constancy == "shades_of_gray")
    start = 0
    for index, (name, end, lr, blocks, decay, size) in enumerate(plan):
        if done < end:
            if not (args.resume and state.get("stage") == name and done > start):  # entering the stage
                if model.input_shape[1] != size:
                    model = resized(model, size, augmentation_config(args), seed=stage_seed(args.seed, index),
                                    alpha=args.alpha)
                    if args.keep == "best":  # the best is chosen among epochs at the new size
                        forget_best(args.run)
                set_trainable(model, blocks, args.batch_norm == "train")  # and a new optimizer
                # No average over the short head stage: Keras ends fit() by loading the average,
                # which after a few hundred steps would still be mostly the untrained head.
                warmup = (args.warmup_epochs if name == "finetune" else 0.5) * decay / max(end - start, 1)
                compile_model(model, lr, args.label_smoothing, decay, round(warmup) if decay else 0,
                              args.ema if decay else 0.0)
            x_tr, x_va = decoded(tr, "training", size), decoded(va, "validation", size)
            print(f"stage {name}: epochs {done + 1}-{end} at {size} px, lr {lr}, unfrozen blocks {blocks}", flush=True)
            data = ({"x": x_tr, "y": onehot[y_tr], "batch_size": args.batch_size} if args.sampling == "shuffle" else
                    {"x": BalancedBatches(x_tr, onehot[y_tr], y_tr, args.batch_size, args.seed, epoch=done),
                     "shuffle": False})  # already drawn at random, repeatably; fit's shuffle would not be
            if args.resume:
                upgrade_history(args.run / "history.csv")
            model.fit(
                **data, epochs=end, initial_epoch=done, class_weight=class_weights(y_tr, args.class_weight),
                callbacks=[EpochEnd(args.run, x_va, y_va, args.batch_size, name, keep=args.keep),
                           keras.callbacks.CSVLogger(str(args.run / "history.csv"), append=True)],
                verbose=args.verbose if args.verbose is not None else ("auto" if sys.stdout.isatty() else 2),
            )
            done = end
        start = end
    return finalize(args, decoded(va, "validation", INPUT_SIZE), y_va, tr, images.get(("training", INPUT_SIZE)))


def finalize(args: argparse.Namespace, x_va: np.ndarray, y_va: np.ndarray, trained: pd.DataFrame,
             x_tr: np.ndarray | None = None) -> Path:
    """Calibrate the kept epoch (``--keep``) on validation and write ``RUN/bundle``, at the
    shipped input size and without the training-only augmentation."""
    state = _read_state(args.run)
    model = keras.saving.load_model(kept_model(args), compile=False)
    if model.input_shape[1] != INPUT_SIZE:  # a run with no epochs at full size
        model = resized(model, INPUT_SIZE, alpha=args.alpha)
    model = inference_graph(model)
    # Full float32 even on a GPU (whose default TF32 convolutions move logits enough to move
    # a case across the threshold), so the calibration holds on the CPUs the package runs on.
    with jax.default_matmul_precision("highest"):
        logits = batched_logits(forward_fn(model), x_va, args.batch_size)
    temperature = fit_temperature(logits, y_va)
    probs = softmax(logits, temperature)
    scaling = fit_malignancy_scaling(probs, y_va)
    threshold = threshold_for_sensitivity(y_va, probs, args.target_sensitivity, scaling)
    rng = np.random.default_rng(args.seed)
    sample = np.sort(rng.choice(len(trained), min(len(trained), 2000), replace=False))
    # the image checks' reference: from training images at full size (decoded for the sample alone
    # where the run had no epochs at full size)
    x_ref = x_tr[sample] if x_tr is not None else load_images(list(trained["path"].iloc[sample]), args.workers)
    meta = {
        **({"preprocessing": {**default_meta()["preprocessing"], "model_input": (
            "uint8-range RGB; the model's first layers apply Shades-of-Gray colour constancy (p=6), then scale "
            "x*scale+offset")}} if has_colour_constancy(model) else {}),
        "temperature": temperature,
        "malignancy_scaling": list(scaling),
        "threshold": threshold,
        "quality": quality.reference(np.asarray(x_ref)),
        "training": {
            "dataset": DATASET["name"], "licence": DATASET["licence"], "citation": DATASET["citation"],
            "train_images": len(trained), "val_images": len(y_va),
            "kept_epoch": state.get("epoch") if args.keep == "last" else state.get("best_epoch"),
            "best_epoch": state.get("best_epoch"), "epochs": state.get("epoch"),
            "recipe": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items() if k not in _NOT_STORED},
            # evaluate warns when it is given these (scores on them overstate the model)
            "train_image_ids": sorted(trained["image_id"]),
        },
        "metrics": {"validation": summary(probs, y_va, threshold, scaling),
                    "validation_uncalibrated": calibration_errors(softmax(logits), y_va)},
    }
    path = save_bundle(model, args.run / "bundle", meta, overwrite=True)
    v = meta["metrics"]["validation"]
    print(f"bundle: {path}  (validation: balanced accuracy {v['balanced_accuracy']:.3f}, malignant AUROC "
          f"{v['malignant_auroc']:.3f}, sensitivity {v['sensitivity']:.3f} at threshold {threshold:.3f}, "
          f"T={temperature:.2f})")
    return path


def main(argv: list[str] | None = None) -> int:
    use_training_flags()
    return run_cli(parser(), lambda args: (train(args), 0)[1], argv)


if __name__ == "__main__":
    raise SystemExit(main())
