"""Summary tables of generated splits (what ``nar generate`` prints and reports include).

``summarize(path)`` accepts a split directory, a loaded :class:`~nar.data.dataset.Dataset`
or an algorithm directory such as ``data/synthetic/bellman_ford/`` (one row per split that
has a manifest: train, val, test first, then any others alphabetically).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from nar.data.dataset import MANIFEST_NAME, Dataset, load_dataset

SPLIT_ORDER = ("train", "val", "test")
COLUMNS = [
    "algorithm",
    "split",
    "graphs",
    "sizes",
    "nodes_min",
    "nodes_mean",
    "nodes_max",
    "length_min",
    "length_mean",
    "length_max",
    "edge_density_mean",
    "shards",
    "megabytes",
]


def split_row(ds: Dataset) -> dict[str, object]:
    """One row of the summary table for a loaded split."""
    n = ds.num_nodes
    t = ds.lengths
    hist = np.unique(n, return_counts=True)
    return {
        "algorithm": ds.spec.name,
        "split": ds.manifest.split,
        "graphs": len(ds),
        "sizes": " ".join(f"{int(k)}:{int(c)}" for k, c in zip(*hist, strict=True)),  # size:graphs
        "nodes_min": int(n.min()) if len(n) else 0,
        "nodes_mean": float(n.mean()) if len(n) else float("nan"),
        "nodes_max": int(n.max()) if len(n) else 0,
        "length_min": int(t.min()) if len(t) else 0,
        "length_mean": float(t.mean()) if len(t) else float("nan"),
        "length_max": int(t.max()) if len(t) else 0,
        "edge_density_mean": _edge_density(ds),
        "shards": len(ds.manifest.shards),
        "megabytes": ds.manifest.total_bytes / 1e6,
    }


def _edge_density(ds: Dataset) -> float:
    """Mean over graphs of edges / (n (n - 1)), from the ``adj`` input (self-loops not counted)
    or, without one, from the nonzero entries of ``A``; NaN if the algorithm has neither."""
    names = {f.name for f in ds.spec.inputs}
    name = "adj" if "adj" in names else "A" if "A" in names else None
    if name is None or len(ds) == 0:
        return float("nan")
    flat, offsets = ds.values(name)
    n = ds.num_nodes
    nonzero = np.add.reduceat((flat != 0).astype(np.int64), offsets[:-1]) if flat.size else np.zeros(len(n))
    nonzero = nonzero - _diagonal_count(flat, offsets, n)
    pairs = n * (n - 1)
    density = np.where(pairs > 0, nonzero / np.maximum(pairs, 1), 0.0)
    return float(density.mean())


def _diagonal_count(flat: np.ndarray, offsets: np.ndarray, n: np.ndarray) -> np.ndarray:
    """(G,) nonzero diagonal entries of each graph's flattened (n, n) matrix."""
    # Diagonal entry k of graph g sits at offsets[g] + k (n_g + 1).
    graph = np.repeat(np.arange(len(n)), n)  # (sum n,) graph of each diagonal entry
    k = np.arange(int(n.sum())) - np.repeat(np.cumsum(n) - n, n)  # its row within the graph
    idx = offsets[:-1][graph] + k * (n[graph] + 1)
    return np.bincount(graph, weights=(flat[idx] != 0), minlength=len(n)).astype(np.int64)


def summarize(source: str | Path | Dataset) -> pd.DataFrame:
    """Summary table of one split (one row) or of every split under an algorithm directory."""
    if isinstance(source, Dataset):
        return pd.DataFrame([split_row(source)], columns=COLUMNS)
    path = Path(source)
    if (path / MANIFEST_NAME).exists() or not path.is_dir():
        return pd.DataFrame([split_row(load_dataset(path))], columns=COLUMNS)
    return summarize_dir(path)


def summarize_dir(path: str | Path) -> pd.DataFrame:
    """One row per split directory (with a manifest) directly under ``path``."""
    path = Path(path)
    splits = [p for p in path.iterdir() if p.is_dir() and (p / MANIFEST_NAME).exists()] if path.is_dir() else []

    def order(p: Path) -> tuple[int, str]:
        return (SPLIT_ORDER.index(p.name) if p.name in SPLIT_ORDER else len(SPLIT_ORDER), p.name)

    rows = [split_row(load_dataset(p)) for p in sorted(splits, key=order)]
    return pd.DataFrame(rows, columns=COLUMNS)
