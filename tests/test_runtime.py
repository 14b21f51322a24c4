"""nar.runtime: the allocator thresholds are set once per process, and can be turned off."""

from __future__ import annotations

import subprocess
import sys

import pytest

SNIPPET = """
from nar.runtime import tune_malloc
first = tune_malloc()
print(first, tune_malloc())
"""


def _run(env_value: str | None) -> str:
    import os

    env = dict(os.environ)
    env.pop("NAR_MALLOC_TUNING", None)
    if env_value is not None:
        env["NAR_MALLOC_TUNING"] = env_value
    out = subprocess.run([sys.executable, "-c", SNIPPET], env=env, capture_output=True, text=True, check=True)
    return out.stdout.strip()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_tune_malloc_sets_thresholds_once_on_glibc() -> None:
    assert _run(None) == "True True"


def test_tune_malloc_can_be_turned_off() -> None:
    assert _run("0") == "False False"
