"""Does the frozen processor need its hint loop in transfer, and where do nar_frozen's ood points go?
A diagnostic and prototypes, validation only (results: ``benchmarks/results/hint_loop.json``).

The registered Bellman-Ford network was pretrained with hint feedback (``encode_hints``, ``hint_feedback:
soft``): at every step its hint decoders read the processor's state and its hint encoders feed the decoded
hints (distances, predecessor pointers, the reached mask) back into the next step's inputs. nar_frozen
(``nar.transfer``) runs the processor alone, so the frozen processor runs without half of its loop.

1. ``--part diagnostic``: the whole pretrained network on validation draws of the project's samplers,
   with its hint feedback and with the hint encodings left out (everything else the same).
2. ``--part transfer``: any trained variant as the sweep trains it (nar_frozen, e2e, bottleneck, nar_costs)
   beside four prototypes. ``nar_frozen_loop``: f~'s latent node and pair features replace the pretrained
   input encodings but the frozen hint encoders and decoders stay in the loop (step 0's hints as
   ``nar.execute`` starts them); a new g~ reads the processor's last state. ``nar_frozen_loop_g``: the same,
   read by the network's own pointer decoder. ``nar_frozen_net``: f~ is the bottleneck's cost network (one
   positive cost per cell or edge) and the whole frozen network runs on those costs as on weights (its
   encoders, weight scale, hint loop and decoder). ``nar_frozen_net_newdec``: the same costs and loop, read by
   a new g~ (what landed as ``nar.transfer``'s ``nar_costs``). Scored on ``val`` and ``val_ood`` (the val
   pool at larger sizes: digit_grid 16x16, road 32-36 nodes), never test or ood.

``--network`` takes any pretraining run directory (``bench_recipe.py --save`` writes one, e.g. with
``--set model.encode_hints=false``). The prototypes use the model's private loop
(``EncodeProcessDecode._run_sparse``) so that they stay out of the pipeline.

    python benchmarks/bench_hint_loop.py --part diagnostic --out /tmp/hint_diag.json
    python benchmarks/bench_hint_loop.py --part transfer --task road --out /tmp/hint_road.json \
        --variants nar_frozen,nar_costs,nar_frozen_net,e2e,bottleneck
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_recipe import draw_val, pointer_accuracy  # noqa: E402

from nar.registry import freeze  # noqa: E402
from nar.transfer.models import CostModel, CostsThroughNetwork, PointerDecoder, TransferModel  # noqa: E402

VAL_OOD = {
    "digit_grid": {"count": 100, "sizes": [16], "pool": "val"},
    "road": {"count": 100, "sizes": [32, 36], "pool": "val"},
    "road_turns": {"count": 100, "sizes": [32, 36], "pool": "val"},
}
ALGORITHM = "bellman_ford"
# f~ latent into the step loop (new g~ / the network's own decoder); learned costs through the whole network
# (its own decoder / a new g~ on the last state)
PROTOTYPES = ("nar_frozen_loop", "nar_frozen_loop_g", "nar_frozen_net", "nar_frozen_net_newdec")


def load_network(directory: str, encode_hints: bool | None = None):
    """The pretrained network of a pretraining run directory; ``encode_hints=False`` leaves its hint
    encodings out (their weights are not loaded); None: as it was trained."""
    from safetensors.torch import load_file

    from nar.algorithms import ALGORITHMS
    from nar.models import EncodeProcessDecode, ModelConfig

    meta = json.loads((Path(directory) / "model.json").read_text())
    stored = ModelConfig.from_dict(meta["model"])
    config = stored if encode_hints is None else dataclasses.replace(stored, encode_hints=encode_hints)
    net = EncodeProcessDecode([ALGORITHMS[a].spec for a in meta["algorithms"]], config)
    dropped = stored.encode_hints and not config.encode_hints
    net.load_state_dict(load_file(str(Path(directory) / "model.safetensors")), strict=not dropped)
    return net.eval()


def diagnostic(directory: str, items: list[str], seed: int) -> dict:
    full, bare = load_network(directory), load_network(directory, encode_hints=False)
    out = {}
    for item in items:
        batch = draw_val(ALGORITHM, item, np.random.default_rng([seed, 99]))
        out[item] = {
            "with_hint_feedback": round(100 * pointer_accuracy(full, batch, ALGORITHM), 2),
            "without": round(100 * pointer_accuracy(bare, batch, ALGORITHM), 2),
        }
        print(item, out[item], flush=True)
    return out


class _GivenInputs(nn.Module):
    """The pretrained spec encoder with its input encodings replaced by f~'s (set per call)."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner
        self.given: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None

    @property
    def hint_fields(self):
        return self.inner.hint_fields

    @property
    def slack_fields(self):  # the step's slack channels (``model.along_slack``) come from the inner encoder
        return self.inner.slack_fields

    @property
    def spec(self):
        return self.inner.spec

    def encode_hints(self, *args, **kwargs):
        return self.inner.encode_hints(*args, **kwargs)

    def encode_inputs_sparse(self, inputs, pairs):
        return self.given


class HintLoopModel(TransferModel):
    """f~ -> the frozen network's step loop (processor + hint decoders + hint encoders) -> g~ (a
    ``TransferModel`` to the training code: pointer loss, f~'s edge normalisation, the processor's checks).
    ``decoder="pretrained"``: the network's own pointer decoder (frozen) instead of a new g~."""

    def __init__(self, encoder: nn.Module, net: nn.Module, decoder: str = "new") -> None:
        nn.Module.__init__(self)  # not TransferModel's: no runner of the bare processor

        self.encoder = encoder
        self.net = freeze(net)  # the whole pretrained network: no gradients, eval mode
        self.enc = _GivenInputs(net.encoders[ALGORITHM])
        self.decoder = PointerDecoder(net.config.hidden) if decoder == "new" else None

    @property
    def processor(self):
        return self.net.processor

    def forward(self, b) -> torch.Tensor:
        from nar.execute import initial_hints
        from nar.models.sparse import SparseBatch

        node, pair_fts, graph = self.encoder(b)
        # step 0 as nar.execute starts a run: {name: (V, 1)}, only step 0 is read
        hints = initial_hints(ALGORITHM, b.is_source)
        batch = SparseBatch(ALGORITHM, {}, hints, {}, b.pairs, b.steps + 1, torch.as_tensor(b.num_nodes))
        self.enc.given = (node, pair_fts, graph)
        pred = self.net._run_sparse(self.enc, self.net.decoders[ALGORITHM], batch, 0.0, False)
        if self.decoder is None:
            return pred.outputs["pi"].float()  # (P,) the pretrained decoder's pointer logits
        return self.decoder(node, pred.last_hidden, pair_fts, b)  # g~ on the processor's last state (V, H)


class WholeNetworkModel(CostsThroughNetwork):
    """nar_costs with the network's own pointer decoder in place of g~: learned costs through the whole frozen
    network (its input encoders and weight scale, processor, hint loop and decoder), the pretraining regime
    exactly, trained through the network by the pointer loss (``nar_frozen_net``)."""

    def __init__(self, costs: nn.Module, net: nn.Module) -> None:
        nn.Module.__init__(self)  # not nar_costs's: no new decoder g~
        self.encoder = costs  # named so f~'s edge-feature normalisation is attached to it
        self.network = freeze(net)
        self.algorithm = ALGORITHM

    def forward(self, b) -> torch.Tensor:
        run = self.network.forward_sparse(self.network_batch(b, self.encoder(b)), keep_hints=False)
        return run.outputs["pi"].float()  # (P,) the network's own pointer logits


def build_val_ood(task: str, params_path: str, data: Path, root: Path) -> None:
    """root/<task>/{train,val} linked to the built splits, val_ood built from the val pool."""
    from nar.config import parse_params, read_params_file
    from nar.natural.build import build_natural

    raw = read_params_file(params_path)
    raw["natural"][task]["splits"]["val_ood"] = VAL_OOD[task]
    build_natural(task, parse_params(raw, ("natural",)).natural, out_dir=root, splits=["val_ood"], progress=False)
    for split in ("train", "val"):
        (root / task / split).symlink_to((data / task / split).resolve())


def one(job: tuple) -> dict:
    params_path, root, network, task, variant, size, seed, budget = job
    torch.set_num_threads(1)
    import nar.transfer.train as transfer_train
    from nar.config import load_params
    from nar.transfer.models import Encoder
    from nar.transfer.train import RunSpec, TaskData, train_run
    from nar.transfer.variants import TRANSFER_VARIANTS

    params = dataclasses.replace(load_params(params_path, "transfer").transfer.task(task), **budget)
    data = TaskData.load(root, task, params, splits=("val", "val_ood"))
    net = load_network(network)
    freeze(net.processor)  # as the sweep's record loads it: no gradients, eval mode
    build = transfer_train.build_model
    if variant in PROTOTYPES:

        def build_loop(spec, params, data, pretrained, mode="auto", network=None):
            build(spec, params, data, pretrained, mode)  # the same seeding as the sweep's variants
            p = params.resolved(data.task)
            if variant.startswith("nar_frozen_net"):
                per = "cell" if data.edge_in == 0 else "edge"
                costs = CostModel(p.node_net, data.node_in, data.edge_in, p.width, per)
                if variant.endswith("_newdec"):  # what landed as nar_costs
                    return CostsThroughNetwork(costs, net, ALGORITHM)
                return WholeNetworkModel(costs, net)
            encoder = Encoder(p.node_net, data.node_in, data.edge_in, p.width, net.config.hidden, p.interface)
            return HintLoopModel(encoder, net, "pretrained" if variant.endswith("_g") else "new")

        transfer_train.build_model = build_loop
    started = time.perf_counter()
    # a prototype runs as nar_frozen (its seed, subset and optimiser); e2e, bottleneck, ... as the sweep runs them
    spec = RunSpec(task, variant if variant in TRANSFER_VARIANTS else "nar_frozen", size, seed)
    try:
        r = train_run(spec, params, data, net.processor, network=freeze(net))  # nar_costs runs the whole network
    finally:  # a pool worker runs later jobs too: they must build their own variant, not this prototype
        transfer_train.build_model = build
    return {
        "variant": variant,
        "size": size,
        "seed": seed,
        "val": round(100 * r.metrics["val"]["pointer_acc"], 2),
        "val_ood": round(100 * r.metrics["val_ood"]["pointer_acc"], 2),
        "best_step": r.best_step,
        "steps": r.steps,
        "seconds": round(time.perf_counter() - started, 1),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--part", choices=["diagnostic", "transfer"], required=True)
    ap.add_argument("--network", default="models/pretrain/bellman_ford", help="a pretraining run directory")
    ap.add_argument("--val", default="er:16,grid:64,geometric:64,tree:64,grid:256,geometric:256,tree:256")
    ap.add_argument("--task", choices=sorted(VAL_OOD), default="road")
    ap.add_argument(
        "--variants", default="nar_frozen,nar_frozen_loop,nar_frozen_net", help="the prototypes or any trained variant"
    )
    ap.add_argument("--sizes", default="100,200")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument(
        "--budget", default="{}", help='JSON overrides of the task\'s transfer params, e.g. {"max_steps": 600}'
    )
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--data", type=Path, default=Path("data/natural"))
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--seed", type=int, default=5, help="the diagnostic's validation draw")
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    torch.set_num_threads(1)
    if args.part == "diagnostic":
        result = {
            "network": args.network,
            "seed": args.seed,
            "pointer_acc_percent": diagnostic(args.network, args.val.split(","), args.seed),
        }
    else:
        budget = json.loads(args.budget)
        with tempfile.TemporaryDirectory() as tmp:
            build_val_ood(args.task, args.params, args.data, Path(tmp))
            jobs = [
                (args.params, tmp, args.network, args.task, v, int(n), int(s), budget)
                for s in args.seeds.split(",")
                for n in args.sizes.split(",")
                for v in args.variants.split(",")
            ]
            rows = []
            with ProcessPoolExecutor(args.workers) as pool:
                for row in pool.map(one, jobs):
                    print(json.dumps(row), flush=True)
                    rows.append(row)
        result = {
            "task": args.task,
            "network": args.network,
            "budget": budget,
            "val_ood": VAL_OOD[args.task],
            "runs": rows,
        }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
