"""Backend selection: JAX for Keras; XLA CPU flags for training, only where they were measured."""

import os
import subprocess
import sys

from screening.backend import CPU_FLAGS, xla_flags


def test_flags_added_on_a_tested_jaxlib_and_user_values_kept():
    flags = xla_flags("--xla_cpu_use_xnnpack=true --xla_dump_to=/tmp/d", "0.10.2").split()
    assert flags[:2] == ["--xla_cpu_use_xnnpack=true", "--xla_dump_to=/tmp/d"]  # the user's, untouched
    assert "--xla_cpu_use_xnnpack=false" not in flags
    assert {f"--{k}={v}" for k, v in CPU_FLAGS.items() if k != "xla_cpu_use_xnnpack"} <= set(flags)


def test_no_flags_on_an_untested_jaxlib():
    """XLA aborts the process on an unknown flag, so versions not measured get none."""
    assert xla_flags("", "0.99.0") == "" and xla_flags("--a=1", "") == "--a=1"


def _flags_in_a_new_process(code: str) -> str:
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    code = f"import os, screening, jax.numpy as jnp\n{code}\nprint(os.environ.get('XLA_FLAGS', ''))"
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True).stdout.strip()


def test_training_sets_them_before_jax_starts_and_inference_does_not():
    import importlib.metadata

    expected = xla_flags("", importlib.metadata.version("jaxlib"))
    started = "jnp.ones(2).sum().block_until_ready()"
    assert _flags_in_a_new_process(f"from screening import train\ntrain.use_training_flags()\n{started}") == expected
    assert _flags_in_a_new_process(f"from screening import inference\n{started}") == ""
    late = f"{started}\nfrom screening.backend import use_training_flags\nassert not use_training_flags()"
    assert _flags_in_a_new_process(late) == ""  # too late to take effect: left alone


def test_a_second_start_compiles_nothing(tmp_path):
    """Loading a model compiles dozens of small programs, each under 0.5 s to compile; the
    cache keeps them too."""
    code = ("import jax, screening\nfrom jax import monitoring\nmisses = []\n"
            "monitoring.register_event_listener(lambda e, **kw: misses.append(e) "
            "if e == '/jax/compilation_cache/cache_misses' else None)\n"
            "from screening.inference import Screener\nScreener()\nprint(len(misses))")
    env = {**os.environ, "SKINSCREEN_CACHE_DIR": str(tmp_path)}
    runs = [subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
            for _ in range(2)]
    first, second = (int(r.stdout.split()[-1]) for r in runs)
    assert first > 10 and second == 0
