"""Checkpoints: plain dicts of tensors and primitives, written atomically, read without unpickling.

A checkpoint is what ``torch.save`` writes for a dict holding only state dicts, tensors,
numbers, strings, lists and dicts, so ``torch.load(..., weights_only=True)`` reads it back
without executing code. Writes go to a temporary file in the same directory, are fsync'ed
and then renamed over the target (``os.replace``), so a process killed mid-write leaves the
previous checkpoint intact.

RNG states (torch CPU and CUDA, numpy's and Python's global generators) are converted to
tensors and lists so they pass the same restricted loader.
"""

from __future__ import annotations

import os
import random
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

LAST = "last.pt"
BEST = "best.pt"


def save_checkpoint(path: str | Path, payload: dict[str, Any]) -> Path:
    """Write ``payload`` to ``path`` atomically (temp file + fsync + os.replace)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            torch.save(payload, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a checkpoint with ``weights_only=True`` (no arbitrary unpickling)."""
    return torch.load(Path(path), map_location=map_location, weights_only=True)


def capture_rng() -> dict[str, Any]:
    """Every global RNG state, in a form ``weights_only`` loading accepts."""
    np_state = np.random.get_state()
    py_version, py_internal, py_gauss = random.getstate()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": {
            "keys": torch.from_numpy(np.asarray(np_state[1], dtype=np.int64)),
            "pos": int(np_state[2]),
            "has_gauss": int(np_state[3]),
            "cached_gaussian": float(np_state[4]),
        },
        "python": {"version": py_version, "internal": list(py_internal), "gauss": py_gauss},
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"].cpu())
    n = state["numpy"]
    np.random.set_state(
        ("MT19937", n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached_gaussian"])
    )
    p = state["python"]
    random.setstate((p["version"], tuple(p["internal"]), p["gauss"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda"]])


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def checkpoint_step(path: str | Path) -> int | None:
    """The training step a checkpoint was written at; None when there is none (or it cannot be read)."""
    path = Path(path)
    if not path.is_file():
        return None
    try:
        return int(load_checkpoint(path)["step"])
    except Exception:  # a torn or foreign file: the loop itself reports it when resuming
        return None
