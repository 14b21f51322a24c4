"""The processor as an MLflow pyfunc model: logged in a registration run, loaded back without unpickling.

The model is logged with ``loader_module="nar.registry"``: ``mlflow.pyfunc.load_model`` then runs this
package's :func:`_load_pyfunc` (re-exported by ``nar.registry``), which verifies the files like
``load_processor``; nothing is unpickled. The processor's files are ``MODEL_DATA_DIR`` in the model.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from nar.models.processors import Processor
from nar.registry.client import RegistryClient
from nar.registry.format import (
    WEIGHTS_FILE,
    LoadedProcessor,
    RegistryError,
    _model_files,
    _read_dir,
    config_sha256,
    save_processor,
)
from nar.registry.load import load_processor
from nar.registry.versions import TAG_SHA
from nar.tracked_run import TrackedRun
from nar.tracking import details_path

LINEAGE_FILE = "lineage.json"


def log_model(
    ml: RegistryClient,
    loaded: LoadedProcessor,
    metrics: Mapping[str, Any],
    lineage: Mapping[str, Any],
    experiment_id: str,
    metrics_file: Path,
) -> tuple[TrackedRun, str, str]:
    """A run with the lineage, and the processor logged in it as a pyfunc model.
    Returns (the run, still RUNNING; the logged model's id; its uri)."""
    import mlflow
    import safetensors

    meta = loaded.meta
    tags = {TAG_SHA: meta.weights_sha256 or "", "git_commit": lineage["git_commit"], "source": lineage["source"]}
    run = TrackedRun.start(ml, experiment_id, f"register-{meta.name}", tags)
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = Path(tmp) / "processor"  # becomes MODEL_DATA_DIR inside the model
        save_processor(
            loaded.processor, data_dir, name=meta.name, algorithms=meta.algorithms, spec_versions=meta.spec_versions
        )
        (data_dir / LINEAGE_FILE).write_text(json.dumps(lineage, indent=2, sort_keys=True) + "\n")
        for fname, data in _model_files(Path(loaded.uri)).items():  # the whole network, for nar.execute
            (data_dir / fname).write_bytes(data)
        if hashlib.sha256((data_dir / WEIGHTS_FILE).read_bytes()).hexdigest() != meta.weights_sha256:
            raise RegistryError("internal: the canonical weights changed while saving them")
        written, _ = _read_dir(data_dir)
        if config_sha256(written) != config_sha256(meta):
            raise RegistryError("internal: processor.json does not read back as the config being registered")

        signature = processor_signature(loaded.processor)

        def log() -> Any:
            # the fluent API, which pyfunc.log_model needs: nested, since the caller (a flow, a training
            # script) may have a run of its own open
            with mlflow.start_run(run_id=run.run_id, nested=mlflow.active_run() is not None):
                return mlflow.pyfunc.log_model(
                    name="processor",
                    loader_module="nar.registry",
                    data_path=str(data_dir),
                    signature=signature,
                    input_example=processor_example(meta.config.hidden),
                    pip_requirements=[
                        f"torch=={torch.__version__.split('+')[0]}",
                        f"safetensors=={safetensors.__version__}",
                        f"mlflow=={mlflow.__version__}",
                    ],
                )

        try:
            params = {f"processor.{k}": v for k, v in meta.config.to_dict().items()}
            run.log_params({**params, "algorithms": ",".join(meta.algorithms)})
            scores = {f"ood_score.{a}": v for a, v in lineage["ood_scores"].items()}
            if isinstance(metrics.get("ood_score"), int | float):
                scores["ood_score"] = float(metrics["ood_score"])
            run.log_metrics(scores)
            run.log_artifacts([metrics_file], artifact_path="metrics")
            if details_path(metrics_file).is_file():
                run.log_artifacts([details_path(metrics_file)], artifact_path="metrics/details")
            info = ml.call("log_model", log)
        except BaseException:
            run.end_quietly("FAILED")
            raise
    return run, info.model_id, info.model_uri


#: what one processor step takes: (name, dtype, shape with -1 for batch B and nodes N, H for hidden)
PROCESSOR_INPUTS = (
    ("node_fts", "float32", ("B", "N", "H")),
    ("edge_fts", "float32", ("B", "N", "N", "H")),
    ("graph_fts", "float32", ("B", "H")),
    ("adj", "bool", ("B", "N", "N")),  # adj[b, i, j]: a message from node j to node i
    ("hidden", "float32", ("B", "N", "H")),  # the previous step's latents (zeros at the first step)
    ("node_mask", "bool", ("B", "N")),  # real nodes (graphs of different sizes padded to N)
)


def processor_example(hidden: int) -> dict[str, Any]:
    """The smallest valid input of one processor step: one graph of two connected nodes, zero features."""
    import numpy as np

    shapes = {"B": 1, "N": 2, "H": hidden}
    example = {n: np.zeros(tuple(shapes[d] for d in shape), dtype=t) for n, t, shape in PROCESSOR_INPUTS}
    example["adj"][:] = True
    example["node_mask"][:] = True
    return example


def processor_signature(processor: Processor) -> Any:
    """The MLflow signature of the pyfunc model: six named tensors in, the new latents (and, for processors
    that keep edge latents, the edge latents) out, shapes with -1 for the batch and node axes.

    Every input is required: MLflow's tensor schemas cannot mark one optional, and enforcing a schema drops
    the inputs it does not list, so an optional ``hidden`` left out would be silently replaced by zeros.
    The outputs come from one step on a two-node graph: exactly what this processor returns."""
    import numpy as np
    from mlflow.models import ModelSignature
    from mlflow.types import Schema, TensorSpec

    hidden = processor.config.hidden
    dims = {"B": -1, "N": -1, "H": hidden}
    inputs = Schema([TensorSpec(np.dtype(t), tuple(dims[d] for d in shape), n) for n, t, shape in PROCESSOR_INPUTS])
    out = _PyfuncProcessor(processor).predict(processor_example(hidden))
    # every axis but the features is batch or nodes: -1
    outputs = Schema([TensorSpec(v.dtype, (-1,) * (v.ndim - 1) + (v.shape[-1],), k) for k, v in out.items()])
    return ModelSignature(inputs=inputs, outputs=outputs)


class _PyfuncProcessor:
    """``mlflow.pyfunc.load_model`` of a registered processor: one processor step on numpy arrays.

    predict({"node_fts": (B, N, H), "edge_fts": (B, N, N, H), "graph_fts": (B, H), "adj": (B, N, N),
    "hidden": (B, N, H), "node_mask": (B, N)}) -> {"hidden": (B, N, H)[, "edges": (B, N, N, H)]}
    (the signature requires all six; called directly, ``hidden`` defaults to zeros and ``node_mask`` to ones)
    """

    def __init__(self, processor: Processor) -> None:
        self.processor = processor

    def predict(self, model_input: Mapping[str, Any], params: Mapping[str, Any] | None = None) -> dict[str, Any]:
        x = {k: torch.as_tensor(v) for k, v in model_input.items()}
        node = x["node_fts"].float()
        B, N, H = node.shape
        hidden = x.get("hidden", torch.zeros(B, N, H)).float()
        mask = x.get("node_mask", torch.ones(B, N, dtype=torch.bool)).bool()
        with torch.no_grad():
            out = self.processor(node, x["edge_fts"].float(), x["graph_fts"].float(), x["adj"].bool(), hidden, mask)
        result = {"hidden": out.hidden.numpy()}
        if out.edges is not None:
            result["edges"] = out.edges.numpy()
        return result


def _load_pyfunc(data_path: str) -> _PyfuncProcessor:
    """MLflow's entry point for ``loader_module="nar.registry"`` (verifies like ``load_processor``)."""
    return _PyfuncProcessor(load_processor(data_path))
