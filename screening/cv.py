"""Compare two training recipes over the same folds: ``screening-cv RUNS_A... --against RUNS_B...``.

Each run folder is one fold of a recipe (``screening.train --folds K --fold I``). A run's
score on its fold is the mean of its last ``--last`` epochs' validation figures
(``history.csv``), so one lucky epoch cannot pick a recipe. The runs of the two recipes are
paired by their validation images (the same fold), and the mean difference over the folds
gets a 95% t interval, its variance corrected for the folds' overlapping training sets
(Nadeau and Bengio 2003: 1/K + 1/(K-1) in place of 1/K): a lever is kept only where that
interval lies above zero. Folds are few (3 or 5), so the interval is wide; and each figure of
each lever is judged on its own, with no allowance for how many are compared.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from screening.cli import described, positive_int, run_cli
from screening.errors import UserError

#: The validation figures ``screening.train`` logs each epoch that a comparison reads, where present.
FIGURES = ("val_balanced_accuracy", "val_malignant_auroc", "val_loss")
HIGHER_IS_BETTER = {"val_balanced_accuracy": True, "val_malignant_auroc": True, "val_loss": False}


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="screening-cv", description=described(__doc__),
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("a", type=Path, nargs="+", metavar="RUN_A", help="run folders of recipe A, one per fold")
    p.add_argument("--against", type=Path, nargs="+", metavar="RUN_B",
                   help="run folders of recipe B on the same folds (without: recipe A's figures alone)")
    p.add_argument("--last", type=positive_int, default=3, help="epochs at the end of each run averaged (default 3)")
    p.add_argument("--json", type=Path, help="also write the figures to this JSON file")
    return p


def fold_score(run: Path, last: int) -> dict:
    """A run's fold (its validation image ids) and the mean of its last ``last`` epochs' figures."""
    history, split = run / "history.csv", run / "split.csv"
    for path in (history, split):
        if not path.is_file():
            raise UserError(f"{path} not found: is {run} a screening.train run folder?")
    if not (run / "bundle" / "bundle.json").is_file():
        raise UserError(f"{run} has not finished (no bundle): a run cut short would be compared at another epoch")
    h = pd.read_csv(history)
    if len(h) < last:
        raise UserError(f"{run} has {len(h)} epochs in its history, fewer than --last {last}")
    table = pd.read_csv(split, dtype=str)
    tail = h.tail(last)
    return {"run": str(run), "epochs": len(h), "val": frozenset(table.loc[table["split"] == "val", "image_id"]),
            **{f: float(tail[f].mean()) for f in FIGURES if f in h.columns}}


def paired(a: Sequence[dict], b: Sequence[dict]) -> list[tuple[dict, dict]]:
    """Each of B's folds with A's run on the same validation images."""
    by_fold = {run["val"]: run for run in a}
    for name, runs in (("A", a), ("B", b)):
        if len({run["val"] for run in runs}) < len(runs):
            raise UserError(f"two of recipe {name}'s runs validate on the same images: give one run per fold")
    pairs = []
    for run in b:
        if run["val"] not in by_fold:
            raise UserError(f"{run['run']} validates on images no run of recipe A does: runs must share folds "
                            "(the same --folds and --split-seed)")
        pairs.append((by_fold[run["val"]], run))
    return pairs


def t_interval(values: Sequence[float], level: float = 0.95) -> list[float]:
    """Student's t interval of the mean of ``values``, one per fold of a K-fold split, with
    Nadeau and Bengio's corrected variance (NaN for fewer than two)."""
    x = np.asarray(values, dtype=float)
    k = len(x)
    if k < 2:
        return [float("nan"), float("nan")]
    half = stats.t.ppf(0.5 + level / 2, k - 1) * x.std(ddof=1) * np.sqrt(1 / k + 1 / (k - 1))
    return [float(x.mean() - half), float(x.mean() + half)]


def compare(a: Sequence[dict], b: Sequence[dict]) -> dict:
    """Per figure: each recipe's mean over the paired folds, the mean difference B - A, its
    interval, and whether B helps (the interval on the better side of zero)."""
    pairs = paired(a, b)
    out = {}
    for f in FIGURES:
        if not all(f in x and f in y for x, y in pairs):
            continue
        diff = [y[f] - x[f] for x, y in pairs]
        lo, hi = t_interval(diff)
        better = lo > 0 if HIGHER_IS_BETTER[f] else hi < 0
        worse = hi < 0 if HIGHER_IS_BETTER[f] else lo > 0
        out[f] = {"a": float(np.mean([x[f] for x, _ in pairs])), "b": float(np.mean([y[f] for _, y in pairs])),
                  "difference": float(np.mean(diff)), "interval": [lo, hi],
                  "verdict": "B helps" if better else "B hurts" if worse else "no difference shown"}
    return {"folds": len(pairs), "figures": out}


def summary(runs: Sequence[dict]) -> dict:
    """One recipe's figures over its folds: mean, standard deviation and t interval of the mean."""
    out = {}
    for f in FIGURES:
        values = [r[f] for r in runs if f in r]
        if len(values) == len(runs):
            out[f] = {"mean": float(np.mean(values)), "sd": float(np.std(values, ddof=1)) if len(values) > 1 else 0.0,
                      "interval": t_interval(values), "folds": values}
    return out


def markdown(a: Sequence[dict], b: Sequence[dict] | None, result: dict, last: int) -> str:
    lines = [f"Mean of the last {last} epochs' validation figures on each fold; 95% t interval over the folds.", ""]
    for name, runs in (("A", a), ("B", b or [])):
        for r in runs:
            shown = ", ".join(f"{f.removeprefix('val_')} {r[f]:.4f}" for f in FIGURES if f in r)
            lines.append(f"- {name}: `{r['run']}` ({len(r['val'])} validation images, {r['epochs']} epochs): {shown}")
    lines.append("")
    if b is None:
        lines += ["| figure | mean | sd | 95% interval |", "|---|---|---|---|"]
        for f, s in result.items():
            lines.append(f"| {f} | {s['mean']:.4f} | {s['sd']:.4f} | {s['interval'][0]:.4f} to {s['interval'][1]:.4f} |")
    else:
        lines += [f"{result['folds']} paired folds.", "", "| figure | A | B | B - A | 95% interval | verdict |",
                  "|---|---|---|---|---|---|"]
        for f, c in result["figures"].items():
            lines.append(f"| {f} | {c['a']:.4f} | {c['b']:.4f} | {c['difference']:+.4f} | "
                         f"{c['interval'][0]:+.4f} to {c['interval'][1]:+.4f} | {c['verdict']} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    def run(args: argparse.Namespace) -> int:
        a = [fold_score(r, args.last) for r in args.a]
        b = [fold_score(r, args.last) for r in args.against] if args.against else None
        result = compare(a, b) if b is not None else summary(a)
        print(markdown(a, b, result, args.last), end="")
        if args.json:
            args.json.write_text(json.dumps(result, indent=2) + "\n")
        return 0

    return run_cli(parser(), run, argv)


if __name__ == "__main__":
    raise SystemExit(main())
