"""Train several recipes side by side on a lent GPU machine, and pack what each run needs here.

    python3 build/gpu_runs.py --base "TRAIN_OPTIONS" "NAME OPTIONS" ["NAME OPTIONS" ...]
        [--stage runs/stage] [--deadline 540] [--out $OUT] [--memory 0.5]

Run on the machine from the repository root, in the call that carries the last part
``build/stage_training_data.py`` made (the parts carried before stay while the machine is
warm); standard library only, so it runs before Keras is there. It puts the staged files where
the recipe looks for them (``stage.json``: the data and the ImageNet weights; the Keras wheels
into a folder on PYTHONPATH), then starts ``python3 -m screening.train TRAIN_OPTIONS --run
runs/NAME OPTIONS`` for each recipe at once, each with an equal share of half the GPU's memory
(four runs with JAX's default share each ran an H200 out of memory; three sharing 0.9 of an
H100's ran two of them out of it, at their CUDA graphs, which XLA keeps outside its share),
and stops any still running ``--deadline`` seconds after it began (a device call ends at 600 s).
Into ``--out``, one ``NAME.tar`` per run: the kept model (``best.keras`` with ``--keep best``, else
the last epoch's: ``last.keras``, the weights' average with ``--ema``, or ``checkpoint.keras``)
without its optimizer state (with Adam's and the moving
average's it is ~52 MB, over the 16 MiB a returned file may be),
state.json, history.csv, split.csv and the log: what ``train --calibrate-only`` and
``build/ship_default_model.sh`` need here. It prints each run's epochs, best and mean of the
last ten epochs' validation balanced accuracy (a single best epoch flatters a run), and its
seconds an epoch (median, and the most: compiling), by which the next call is sized.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import re
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MANIFEST = "stage.json"
SITE = Path(tempfile.gettempdir()) / "skinscreen-site"
KEPT = ("best.keras", "last.keras", "checkpoint.keras")  # what --keep ships (screening.train.kept_model): the first there
BROUGHT = ("state.json", "history.csv", "split.csv", "train.log")
MOST_BACK = 16 * 2**20  # per returned file
LAST = 10  # epochs averaged
GRACE_S = 15  # after SIGTERM, before SIGKILL
KERAS_EPOCH = re.compile(r"^\d+/\d+ - (\d+)s ")  # the line Keras logs for an epoch with --verbose 2
SLIM = """import sys
import screening.train  # first: it picks Keras's JAX backend, and registers the custom layers
import keras
for best, slim in zip(sys.argv[1::2], sys.argv[2::2]):
    keras.saving.load_model(best, compile=False).save(slim)
"""


def merge(stage: Path) -> list[Path]:
    """Put the staged parts where the recipe looks for them; returns the wheels."""
    manifest = json.loads((stage / "part1" / MANIFEST).read_text())
    found = []
    for part in sorted(stage.glob("part*")):
        for f in sorted(p for p in part.rglob("*") if p.is_file() and p.name != MANIFEST):
            kind, rest = f.relative_to(part).parts[0], Path(*f.relative_to(part).parts[1:])
            if kind == "wheels":
                found.append(f)
                continue
            target = Path(manifest["data"]) / rest if kind == "ham10000" else Path(manifest["weights"])
            target.parent.mkdir(parents=True, exist_ok=True)
            if not target.exists():
                shutil.copy2(f, target)
    return found


def install(wheels: list[Path]) -> dict[str, str]:
    """The wheels into ``SITE``; the environment the runs need to import them."""
    if wheels:
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-index", "--no-deps", "--no-compile",
                        "--no-cache-dir", "--upgrade", "--target", str(SITE), *map(str, wheels)], check=True)
    paths = [str(SITE)] * bool(wheels) + [str(ROOT), os.environ.get("PYTHONPATH", "")]
    return {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, paths)), "PYTHONUNBUFFERED": "1"}


def run_all(commands: dict[str, list[str]], logs: dict[str, Path], env: dict[str, str], deadline: float,
            memory: float, every: float = 60.0) -> dict[str, str]:
    """Start every command at once; by ``deadline`` (``time.monotonic()``) each has ended or is
    stopped. Returns name -> how it ended. Each log lies in its run's folder (progress lines
    read the run's history.csv there)."""
    share = {**env, "XLA_PYTHON_CLIENT_MEM_FRACTION": f"{memory / len(commands):.3f}"}
    running = {}
    for name, command in commands.items():
        with open(logs[name], "ab") as log:
            running[name] = subprocess.Popen(command, cwd=ROOT, env=share, stdout=log, stderr=subprocess.STDOUT)
    ended: dict[str, str] = {}
    said = time.monotonic()
    while True:
        for name, p in running.items():
            if name not in ended and p.poll() is not None:
                ended[name] = "finished" if p.returncode == 0 else f"failed (exit {p.returncode})"
        if len(ended) == len(running) or time.monotonic() >= deadline:
            break
        time.sleep(min(1.0, max(0.0, deadline - time.monotonic())))
        if time.monotonic() - said >= every:
            print(f"{deadline - time.monotonic():.0f} s left: " + ", ".join(
                f"{name} {ended.get(name) or f'epoch {len(history(logs[name].parent))}'}" for name in running),
                flush=True)
            said = time.monotonic()
    late = [name for name in running if name not in ended]
    for name in late:
        running[name].send_signal(signal.SIGTERM)
    stop_by = time.monotonic() + GRACE_S
    for name in late:
        try:
            running[name].wait(max(0.1, stop_by - time.monotonic()))
        except subprocess.TimeoutExpired:
            running[name].kill()
            running[name].wait()
        ended[name] = "stopped at the deadline"
    return ended


def history(run: Path) -> list[float]:
    """Validation balanced accuracy per epoch, from the run's history.csv (a row being written is left out)."""
    path = run / "history.csv"
    values = []
    if path.is_file():
        with open(path, newline="") as f:
            for row in csv.DictReader(f):
                try:
                    values.append(float(row["val_balanced_accuracy"]))
                except (KeyError, TypeError, ValueError):
                    pass
    return values


def epoch_seconds(log: Path) -> list[int]:
    """Seconds each epoch took, as Keras logged them (the first of each stage compiles): what the
    next call's recipes and epochs are sized by."""
    text = log.read_text(errors="replace") if log.is_file() else ""
    return [int(m.group(1)) for line in text.splitlines() if (m := KERAS_EPOCH.match(line))]


def pack(runs: dict[str, Path], out: Path, env: dict[str, str]) -> None:
    """One NAME.tar per run in ``out``, its kept model without the optimizer state."""
    out.mkdir(parents=True, exist_ok=True)
    kept = {name: next((run / k for k in KEPT if (run / k).is_file()), None) for name, run in runs.items()}
    slim = {name: model.with_suffix(".slim.keras") for name, model in kept.items() if model is not None}
    if slim:  # on the CPU: the GPU's memory may still be held, and this is a few seconds
        pairs = [str(a) for name in slim for a in (kept[name], slim[name])]
        subprocess.run([sys.executable, "-c", SLIM, *pairs], cwd=ROOT, env={**env, "JAX_PLATFORMS": "cpu"}, check=True)
    for name, run in runs.items():
        tar = out / f"{name}.tar"
        with tarfile.open(tar, "w") as t:
            if name in slim:
                t.add(slim[name], arcname=f"{name}/{kept[name].name}")
            for file in BROUGHT:
                if (run / file).is_file():
                    t.add(run / file, arcname=f"{name}/{file}")
        if tar.stat().st_size > MOST_BACK:
            print(f"warning: {tar.name} is {tar.stat().st_size / 2**20:.1f} MiB, over the 16 MiB a returned file "
                  "may be", file=sys.stderr)


def table(runs: dict[str, Path], ended: dict[str, str]) -> str:
    header = f"| run | ended | epochs | best val balanced accuracy (epoch) | mean of the last {LAST} "
    lines = [header + "| s an epoch: median (most) |", "|---|---|---|---|---|---|"]
    for name, run in runs.items():
        h, took = history(run), epoch_seconds(run / "train.log")
        best = f"{max(h):.3f} ({h.index(max(h)) + 1})" if h else "-"
        last = f"{sum(h[-LAST:]) / len(h[-LAST:]):.3f}" if h else "-"
        pace = f"{statistics.median(took):g} ({max(took)})" if took else "-"
        lines.append(f"| {name} | {ended[name]} | {len(h)} | {best} | {last} | {pace} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("recipes", nargs="+", metavar="NAME OPTIONS",
                   help="a run's name (its folder runs/NAME) and the options it adds to --base, in one argument")
    p.add_argument("--base", required=True, help="training options every run shares (data first; no --run)")
    p.add_argument("--stage", type=Path, default=Path("runs/stage"), help="the parts' folder (none: data in place)")
    p.add_argument("--deadline", type=float, default=540.0, help="seconds from start after which runs are stopped")
    p.add_argument("--runs", type=Path, default=ROOT / "runs", help="where the run folders go")
    p.add_argument("--out", type=Path, default=Path(os.environ.get("OUT", "runs/back")), help="where the tars go")
    p.add_argument("--memory", type=float, default=0.5,
                   help="share of the GPU's memory for all runs together (the rest: CUDA graphs, contexts)")
    args = p.parse_args(argv)
    deadline = time.monotonic() + args.deadline
    recipes = [shlex.split(r) for r in args.recipes]
    names = [r[0] for r in recipes]
    if len(set(names)) < len(names) or len(names) > 8:  # a call brings back 8 files at most
        p.error("give at most 8 recipes, each with a name of its own")
    wheels = merge(args.stage) if (args.stage / "part1" / MANIFEST).is_file() else []
    env = install(wheels)
    runs = {name: args.runs / name for name in names}
    logs = {name: run / "train.log" for name, run in runs.items()}
    for run in runs.values():
        run.mkdir(parents=True, exist_ok=True)
    commands = {r[0]: [sys.executable, "-m", "screening.train", *shlex.split(args.base), "--run", str(runs[r[0]]),
                       "--verbose", "2", *r[1:]] for r in recipes}
    print(f"{len(commands)} runs, stopped {args.deadline:.0f} s after the start if still running", flush=True)
    ended = run_all(commands, logs, env, deadline, args.memory)
    pack(runs, args.out, env)
    print(table(runs, ended))
    for name in names:
        if ended[name].startswith("failed"):
            tail = logs[name].read_text(errors="replace").splitlines()[-5:]
            print(f"{name}'s log ends:\n  " + "\n  ".join(tail))
    return 0 if all(history(run) for run in runs.values()) else 1  # each run has an epoch to bring back


if __name__ == "__main__":
    raise SystemExit(main())
