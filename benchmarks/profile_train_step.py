"""Where a training step's time goes: XLA CPU work per kind of fused kernel.

    python benchmarks/profile_train_step.py [--train-blocks 13] [--steps 2] [--top 12]

Traces the same training step as ``python -m screening.bench`` (project layers, batch 32,
224x224) with the JAX profiler and sums the XLA kernel events by kind (the fusion name
without its number). Read the shares, not the sum: the trace records each kernel once,
not the slices it hands to other cores (the script also prints process CPU time over wall
time, which says how busy the cores were). How to read the kinds (from XLA's HLO dump,
``XLA_FLAGS=--xla_dump_to=DIR --xla_dump_hlo_as_text``):

- ``ffi_call``: the native depthwise kernel gradients (``native/``); without the native
  module, ``slice_add_fusion``: the same as nine per-tap tree sums per layer;
- ``dot`` (``ynn_fusion`` without the training flags of ``screening.backend``): matrix
  multiplies (the 1x1 and im2col convolutions);
- ``multiply_bitcast_fusion``, ``clamp_*``, ``pad_slice_fusion``: elementwise forward and
  backward work (batch norm, ReLU6, depthwise taps and their input gradients), which XLA
  partly recomputes inside the backward pass instead of reading it back.
"""

from __future__ import annotations

import argparse
import collections
import os
import re
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import jax

from screening.backend import use_training_flags  # first screening import: selects JAX for keras
from screening.bench import setup_model, training_step


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--train-blocks", type=int, default=13)
    p.add_argument("--steps", type=int, default=2, help="traced steps (after two untimed ones)")
    p.add_argument("--top", type=int, default=12, help="kinds to list")
    args = p.parse_args()
    use_training_flags()  # as screening.train and screening.bench run
    step = training_step(*setup_model(True, 32), args.train_blocks)
    for _ in range(2):
        step()
    with tempfile.TemporaryDirectory() as tmp:
        start, cpu = time.perf_counter(), sum(os.times()[:2])
        with jax.profiler.trace(tmp):
            for _ in range(args.steps):
                step()
        wall = (time.perf_counter() - start) / args.steps
        cores = (sum(os.times()[:2]) - cpu) / args.steps / wall
        trace = next(Path(tmp).rglob("*.xplane.pb"))
        kinds: collections.Counter[str] = collections.Counter()
        for plane in jax.profiler.ProfileData.from_file(str(trace)).planes:
            for line in plane.lines:
                if line.name.startswith("tf_XLAEigen"):  # XLA's worker threads
                    for ev in line.events:
                        if not ev.name.startswith("ThunkExecutor"):
                            kinds[re.sub(r"\.\d+$", "", ev.name)] += ev.duration_ns / 1e6 / args.steps
    total = sum(kinds.values())
    print(f"training step, batch 32, {args.train_blocks} blocks trained: {wall * 1e3:.0f} ms wall "
          f"(traced), CPU time {cores:.2f}x wall; shares of the traced XLA kernel time:")
    for kind, ms in kinds.most_common(args.top):
        print(f"{ms:9.1f} ms {100 * ms / total:5.1f}%  {kind}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
