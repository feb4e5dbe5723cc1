"""Draft a model card from a bundle and its evaluations; a person then edits the result.

    python -m screening.model_card --model BUNDLE --validation EVAL_DIR [--test EVAL_DIR] --out MODEL_CARD.md

EVAL_DIRs are ``screening.evaluate`` outputs (``metrics.json`` and plots). Every number in
the draft comes from those files or from the bundle's ``bundle.json``.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from screening.bundle import read_meta
from screening.cli import described, run_cli
from screening.data import parse_prefer
from screening.evaluate import figure, interval_note, operating_points_table, with_interval
from screening.info import CLASS_CODES, CLASS_NAMES, DATASET, MALIGNANT, NOTICE
from screening.preprocessing import INPUT_SIZE
from screening.subgroups import AUROC_LESIONS, table
from screening.train import command_for, split_seed


def _copy(prefer: str | None, owner: str) -> str:
    """Which image copy a split used, from the recipe's ``--train-prefer``/``--val-prefer``."""
    folders = parse_prefer(prefer or "")
    if not folders:
        return "each image's best copy"
    return f"the `{folders[0]}` copy where {owner} has one" + "".join(f", else the `{f}` copy" for f in folders[1:])


def _sizes(recipe: dict) -> str:
    """Where the recipe trained smaller than it ships: at which size, and the epochs at full size."""
    size, final = recipe.get("image_size", INPUT_SIZE), recipe.get("final_epochs", 0)
    return (f", both at {size} px" if size != INPUT_SIZE else "") + (
        f", then {final} epochs at {INPUT_SIZE} px at lr {recipe.get('final_lr')}" if final else "")


def _levers(recipe: dict) -> str:
    """The augmentation levers a recipe turned on, as they follow the default list."""
    crop, jitter = recipe.get("random_resized_crop", 0), recipe.get("colour_jitter", 0)
    return (f", random-resized crops of {crop:g} to 1 of the area" if crop else "") + (
        f", contrast and saturation jitter of +-{jitter:g}" if jitter else "")


def _kept(training: dict, recipe: dict) -> str:
    """Which epoch was shipped: recipes before ``--keep`` shipped the best on validation."""
    if recipe.get("keep", "best") == "last":
        return f"The last epoch, {training.get('epochs')}, is shipped (not chosen on validation)."
    return f"Best epoch by validation balanced accuracy: {training.get('best_epoch')} of {training.get('epochs')}."


def _batch_norm(recipe: dict) -> str:
    if recipe.get("batch_norm", "frozen") == "frozen":
        return "frozen at its ImageNet statistics"
    return "trained in the fine-tuned blocks"


def _scaling(scaling: list[float] | None) -> str:
    if not scaling:
        return "The malignancy probability is the plain sum p(akiec) + p(bcc) + p(mel). "
    a, b = scaling
    return ("The malignancy probability is p(akiec) + p(bcc) + p(mel) mapped through "
            f"sigmoid({a:.3f} * logit(p) {'+' if b >= 0 else '-'} {abs(b):.3f}), also fitted on validation (minimum "
            "log-loss for malignant vs benign): class-weighted training makes the plain sum overstate how often a "
            "lesion is malignant, which a temperature cannot correct. The mapping is monotone, so it changes no "
            "ranking. ")


def _metrics_table(m: dict) -> list[str]:
    return [
        "| metric | value |", "|---|---|",
        f"| images | {m['n']} |",
        f"| balanced accuracy (mean per-class recall) | {with_interval(m, 'balanced_accuracy')} |",
        f"| accuracy | {figure(m['accuracy'])} |",
        f"| macro AUROC (one vs rest) | {figure(m['macro_auroc'])} |",
        f"| malignant-vs-benign AUROC | {with_interval(m, 'malignant_auroc')} |",
        f"| sensitivity (malignant) at threshold {m['threshold']:.3f} | {with_interval(m, 'sensitivity')} |",
        f"| specificity at threshold {m['threshold']:.3f} | {with_interval(m, 'specificity')} |",
        f"| expected calibration error, top class, before / after temperature | {figure(m['ece_uncalibrated'])} / {figure(m['ece'])} |",
        (f"| expected calibration error, malignancy probability, before / after scaling | "
         f"{figure(m['malignancy_ece_uncalibrated'])} / {figure(m['malignancy_ece'])} |"),
        "", "| class | recall | precision | F1 | support |", "|---|---|---|---|---|",
        *[f"| {c} ({CLASS_NAMES[c]}) | {with_interval(m, f'recall_{c}', v['recall'])} | {figure(v['precision'])} | "
          f"{figure(v['f1'])} | {v['support']} |" for c, v in m["per_class"].items()],
        "", *interval_note(m),
    ]


def _subgroups(evaluation: Path, rel) -> list[str]:
    """The ``screening.subgroups`` table of an evaluation, where it has one."""
    path = evaluation / "subgroups.json"
    if not path.is_file():
        return []
    result = json.loads(path.read_text())
    return ["### By subgroup",
            (f"`python -m screening.subgroups {rel(evaluation)} --metadata HAM10000_metadata.csv`; "
             f"sensitivity and specificity at {result['threshold']:.3f} with Wilson's 95% interval, counting "
             f"{result['unit']}; AUROC with a percentile bootstrap of {result['unit']}, none for a group of fewer "
             f"than {AUROC_LESIONS} malignant or benign {result['unit']}."), "",
            *table(result), "", f"![by subgroup]({rel(evaluation / 'subgroups.png')})", ""]


def render(meta: dict, validation: Path, test: Path | None, out: Path, notes: str = "") -> str:
    """The card's Markdown; ``notes`` (hand-written sections) go after the operating point."""
    val = json.loads((validation / "metrics.json").read_text())
    recipe = meta.get("training", {}).get("recipe", {})
    rel = lambda p: os.path.relpath(p, out.parent)
    lines = [
        f"# Model card: {meta.get('name')}", "", f"> **{NOTICE}**", "",
        "## Intended use",
        ("Research and teaching: exploring automated triage of **dermoscopic** images of pigmented skin lesions "
        "into seven HAM10000 diagnoses, with a calibrated malignancy probability "
        f"(of {', '.join(MALIGNANT[:-1])} or {MALIGNANT[-1]}) and a referral flag. Intended users are researchers, "
        "educators and clinicians evaluating such tools, who read every result themselves. It is not a medical "
        "device, not cleared for diagnosis, and must not be used to rule out cancer."), "",
        "## Model",
        (f"Keras 3 MobileNet v1 (alpha {recipe.get('alpha', 1.0)}, 224x224) on the JAX backend, initialised from "
        "ImageNet weights; global average pooling, dropout, a 7-way dense layer (logits). "
        f"Output classes, in order: {', '.join(CLASS_CODES)}. Bundle sha256 `{meta.get('sha256', '')[:16]}...`, "
        f"software {meta.get('software_version')}, created {meta.get('created')}."), "",
        "## Training data",
        (f"{DATASET['name']} ({DATASET['licence']}; the model inherits the non-commercial restriction). "
        f"Citation: {DATASET['citation']}."),
        (f"Split by lesion (80/10/10, stratified by diagnosis, seed {split_seed(recipe)}): "
        f"{meta['training'].get('train_images')} training images, {meta['training'].get('val_images')} validation "
        f"images; no lesion in two splits. Training uses {_copy(recipe.get('train_prefer'), 'each image')}; "
        f"validation and test use {_copy(recipe.get('val_prefer'), 'the lesion')}."), "",
        "## Preprocessing",
        ("EXIF orientation, an embedded colour profile applied (to sRGB: HAM10000's images carry none), "
         "conversion to RGB, centre square, antialiased resize to 224x224 "
         "(`screening.preprocessing.preprocess`), "
         + ("Shades-of-Gray colour constancy (p=6) and " if recipe.get("colour_constancy") == "shades_of_gray" else "")
         + "scaling to [-1, 1] inside the model."), "",
        "## Recipe",
        (f"Head {recipe.get('head_epochs')} epochs at lr {recipe.get('head_lr')}, then the last "
        f"{recipe.get('unfreeze_blocks')} of 13 blocks for {recipe.get('epochs')} epochs at lr {recipe.get('lr')} "
        f"(linear warm-up over {recipe.get('warmup_epochs', 0)} epochs, then cosine decay)"
        f"{_sizes(recipe)}, Adam, "
        f"batch {recipe.get('batch_size')}, label smoothing {recipe.get('label_smoothing')}, "
        f"{recipe.get('class_weight')} class weights"
        f"{', class-balanced batches' if recipe.get('sampling') == 'balanced' else ''}, batch norm {_batch_norm(recipe)}; "
        f"augmentation: flips, rotation, zoom, brightness, Gaussian noise{_levers(recipe)}. "
        f"{_kept(meta['training'], recipe)}"),
        f"Reproduce: `{command_for(recipe)}`.", "",
        "## Calibration and operating point",
        (f"Softmax temperature {meta['temperature']:.3f}, fitted on validation (minimum NLL). "
        f"{_scaling(meta.get('malignancy_scaling'))}Referral threshold "
        f"{meta['threshold']:.3f} on the malignancy probability: it flags the fewest validation cases that give "
        f"malignant sensitivity >= {recipe.get('target_sensitivity', 0.9)}, placed halfway between the last "
        "malignant case needed and the next lower score."), "",
        *([notes.strip(), ""] if notes.strip() else []),
        "## Validation metrics (lesion-grouped validation split)",
        ("The split used to choose the best epoch, the calibration and the threshold, so these figures are "
        "optimistic."), "", *_metrics_table(val), "",
        *(["### Other operating points",
            ("Thresholds that the same rule gives on validation for other sensitivity targets; pass one to "
             "`batch.py --threshold` to screen at that point. Fitted on validation, so optimistic, and as uncertain "
             "as the sensitivity interval above."), "", *operating_points_table(val)]
          if val.get("operating_points") else []),
        f"![confusion matrix]({rel(validation / 'confusion_matrix.png')})",
        f"![ROC]({rel(validation / 'roc.png')})",
        f"![reliability]({rel(validation / 'reliability.png')})", "",
        *_subgroups(validation, rel),
    ]
    if test is not None:
        tm = json.loads((test / "metrics.json").read_text())
        lines += ["## Hold-out test metrics (scored once)",
                  "Lesions never used for training or any choice above.", "", *_metrics_table(tm), "",
                  f"![confusion matrix]({rel(test / 'confusion_matrix.png')})", "", *_subgroups(test, rel)]
    lines += [
        "## Limitations",
        "- Dermoscopic images only; clinical (non-dermoscopic) photographs are out of scope.",
        "- Seven classes only: any other diagnosis is forced into one of them.",
        ("- Darker skin types are under-represented in HAM10000 (mostly Central European and Australian "
        "patients); performance on them is unknown."),
        ("- Training copies are small JPEGs (200x150 at quality ~75, or 224x224 at ~95); fine structures may be "
         "lost."),
        "- Validation and test come from the same two sites as training; an external test set will score lower.",
        "- Calibration was fitted on the validation split and may drift on other populations and devices.",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m screening.model_card", description=described(__doc__),
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", type=Path, required=True)
    p.add_argument("--validation", type=Path, required=True)
    p.add_argument("--test", type=Path)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--notes", type=Path,
                   help="Markdown with the hand-written sections (how the model was made, why), kept across redrafts")

    def run(args: argparse.Namespace) -> int:
        _, meta = read_meta(args.model)
        notes = args.notes.read_text(encoding="utf-8") if args.notes else ""
        args.out.write_text(render(meta, args.validation, args.test, args.out, notes), encoding="utf-8")
        print(f"wrote {args.out}")
        return 0

    return run_cli(p, run, argv)


if __name__ == "__main__":
    raise SystemExit(main())
