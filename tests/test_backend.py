"""Backend selection: JAX for Keras, XLA CPU flags only where they were measured."""

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


def test_importing_screening_sets_them_before_jax_starts():
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    code = "import screening, os, jax.numpy as jnp; jnp.ones(2).sum().block_until_ready(); print(os.environ['XLA_FLAGS'])"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True).stdout
    import importlib.metadata

    assert out.strip() == xla_flags("", importlib.metadata.version("jaxlib"))
