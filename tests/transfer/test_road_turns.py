"""road_turns in the transfer sweep: walks timed with their turns, the oracle exact (issue 16 item 2)."""

import json

import numpy as np
import pytest

from nar.natural.targets import path_regret
from nar.transfer.config import EvaluateParams, parse_transfer_params
from nar.transfer.metrics import path_outcome
from nar.transfer.sweep import run_transfer
from nar.transfer.train import heuristic_predictions

from .test_stage import FAST_TASK, evaluate_swept


def true_slot_costs(split):
    """(T,) the hidden delay of every used turn slot of ``split``, in the batch's slot order."""
    import torch

    return torch.from_numpy(
        np.concatenate(
            [
                split.turn_cost[i][
                    split.turn_e[split.turn_start[i] : split.turn_start[i + 1]], np.nonzero(split.turn_next[i] >= 0)[1]
                ]
                for i in range(len(split))
            ]
        )
    )


@pytest.fixture(scope="module")
def swept(turns_root, processor_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("turns_stage")
    params = parse_transfer_params(
        {
            "processor": str(processor_dir),
            "data": str(turns_root),
            "variants": ["nar_frozen", "bottleneck", "bottleneck_turns", "heuristic", "oracle"],
            "sizes": [8],
            "seeds": [0, 1],
            "workers": 1,
            "eval_batch_size": 4,
            "picture_size": 8,
            "picture_examples": 2,
            "tasks": {"road_turns": FAST_TASK},
        }
    )
    metrics = run_transfer(
        "road_turns",
        params,
        models_root=out / "models",
        metrics_root=out / "metrics",
        checkpoints_root=out / "checkpoints",
        track=False,
        progress=False,
    )
    return out, metrics


def test_the_sweep_runs_on_road_turns_and_the_oracle_is_exact(swept):
    _, m = swept
    assert m["task"] == "road_turns" and set(m["results"]) == {
        "nar_frozen",
        "bottleneck",
        "bottleneck_turns",
        "heuristic",
        "oracle",
    }
    for split, cell in m["results"]["oracle"]["n8"]["s0"].items():
        assert cell["pointer_acc"] == 1.0 and cell["path_match"] == 1.0 and cell["invalid"] == 0, split
        # the fastest route may pass a node twice, which no pointer chain spells: regret >= 0, small
        assert 0.0 <= cell["regret"] < 0.05, split
    for variant in ("nar_frozen", "bottleneck", "bottleneck_turns", "heuristic"):
        test = m["results"][variant]["n8"]["s0"]["test"]
        assert 0.0 <= test["pointer_acc"] <= 1.0


def test_path_regret_times_walks_with_their_turns(swept, turns_root):
    """The metric's regret is nar.natural.targets.path_regret (walk_time against dist[target]), example by
    example; the turn-blind sum of segment times would differ."""
    from nar.transfer.config import TaskTransferParams
    from nar.transfer.train import TaskData

    data = TaskData.load(str(turns_root), "road_turns", TaskTransferParams(width=8))
    split = data.splits["test"]
    preds = heuristic_predictions(split, data.algorithm)
    differs = 0
    for i, (ex, pred) in enumerate(zip(split.examples, preds, strict=True)):
        es, ee = split.edge_start[i], split.edge_start[i + 1]
        ei = split.edge_index[es:ee]
        out = path_outcome(
            pred,
            ex.pi,
            ex.source,
            ex.target,
            ei,
            split.edge_cost[es:ee],
            turn_next=split.turn_next[i],
            turn_cost=split.turn_cost[i],
            best=float(split.best_time[i]),
        )
        want = path_regret(ex, pred)
        assert out.valid and want is not None
        assert out.regret == pytest.approx(want, abs=1e-6)
        blind = path_outcome(pred, ex.pi, ex.source, ex.target, ei, split.edge_cost[es:ee])
        differs += not np.isclose(blind.regret, out.regret)
    assert differs > 0  # the turns matter to the times


def test_evaluate_reports_road_turns_when_named(swept, turns_root, tmp_path):
    params = EvaluateParams(
        tasks=("road_turns",), report=str(tmp_path / "blueprint.md"), notes=str(tmp_path / "none.md"), low_data=8
    )
    summary = evaluate_swept(swept, turns_root, tmp_path, params)
    assert set(summary) == {"road_turns"}
    assert summary["road_turns"]["aggregate"]["test"]["oracle"]["n8"]["pointer_acc"]["mean"] == 1.0
    report = (tmp_path / "blueprint.md").read_text()
    assert "## road_turns" in report and "against the heuristic" in report
    assert (tmp_path / "plots" / "png" / "road_turns_test_example.png").is_file()
    assert json.loads((tmp_path / "evaluate.json").read_text())["road_turns"]["verdict"]["against_heuristic"]


def test_every_task_runs_by_default_and_params_yaml_names_them_all():
    from nar.config import load_params
    from nar.transfer.config import TASKS

    assert EvaluateParams().tasks == TASKS and "road_turns" in TASKS
    assert load_params("params.yaml", "evaluate").evaluate.tasks == ("digit_grid", "road", "road_turns")


def test_turn_solver_matches_the_edge_based_solver(turns_root):
    """solve_turn_pointers on a batch = nar.natural.turns.edge_based_tree per example (true costs)."""
    import torch

    from nar.natural.turns import edge_based_tree
    from nar.transfer.config import TaskTransferParams
    from nar.transfer.solver import solve_turn_tree, true_turn_usage, turn_usage
    from nar.transfer.train import TaskData

    data = TaskData.load(str(turns_root), "road_turns", TaskTransferParams(width=8))
    split = data.splits["test"]
    b = split.batch(range(len(split)))
    turn = true_slot_costs(split)
    pi, y = solve_turn_tree(b.edge_cost.double(), turn, b)
    for i, ex in enumerate(split.examples):
        o = int(b.node_offset[i])
        want = edge_based_tree(
            ex.num_nodes,
            ex.edge_index,
            ex.hidden["edge_cost"],
            ex.inputs["turn_next"],
            ex.hidden["turn_cost"],
            ex.source,
        ).pi
        assert (pi[o : o + ex.num_nodes].numpy() - o).tolist() == want.tolist()
        assert want.tolist() == ex.pi.tolist()  # and the stored targets
    assert torch.equal(y, true_turn_usage(b))
    # usage: every non-source node charges its subtree to its arrival segment
    E = b.total_edges
    y_seg, _ = turn_usage(
        b.pi.numpy(), b.edge_src.numpy(), b.edge_dst.numpy(), b.turn_e.numpy(), b.turn_f.numpy(), b.total_nodes
    )
    assert float(y[:E].sum()) == float(y_seg.sum()) > 0


def test_bottleneck_turns_trains_on_road_turns_only(turns_root, natural_root):
    from nar.errors import NarError
    from nar.transfer.config import TaskTransferParams
    from nar.transfer.train import RunSpec, TaskData, train_run

    fast = TaskTransferParams(
        width=8, batch_size=4, max_steps=3, eval_every=2, patience=2, val_examples=4, precision="float32"
    )
    data = TaskData.load(str(turns_root), "road_turns", fast)
    r = train_run(RunSpec("road_turns", "bottleneck_turns", 8, 0), fast, data, None, eval_batch_size=4)
    assert r.steps == 3 and set(r.metrics) == {"val", "test", "ood"}
    assert all(m["invalid"] == 0 for m in r.metrics.values())  # an exact solver's tree: always valid paths
    road = TaskData.load(str(natural_root), "road", fast)
    with pytest.raises(NarError, match="turn task"):
        train_run(RunSpec("road", "bottleneck_turns", 8, 0), fast, road, None)


def test_the_blackbox_gradient_moves_turn_costs(turns_root):
    """One backward pass: the gradient reaches the turn costs (not all zero)."""
    import torch

    from nar.transfer.config import TaskTransferParams
    from nar.transfer.solver import blackbox_turn_tree, true_turn_usage, usage_loss
    from nar.transfer.train import TaskData

    data = TaskData.load(str(turns_root), "road_turns", TaskTransferParams(width=8))
    b = data.train.batch(range(8))
    seg = torch.ones(b.total_edges, dtype=torch.float64, requires_grad=True)
    turn = torch.zeros(len(b.turn_e), dtype=torch.float64, requires_grad=True)
    loss = usage_loss(blackbox_turn_tree(seg, turn, b, 1.0), true_turn_usage(b).double(), b.total_nodes)
    loss.backward()
    assert float(loss.detach()) > 0 and turn.grad.abs().sum() > 0 and seg.grad.abs().sum() > 0


def test_a_sweep_of_a_task_without_turns_skips_bottleneck_turns(natural_root, processor_dir, tmp_path):
    params = parse_transfer_params(
        {
            "processor": str(processor_dir),
            "data": str(natural_root),
            "variants": ["bottleneck_turns", "oracle"],
            "sizes": [8],
            "seeds": [0],
            "workers": 1,
            "picture_size": 8,
            "tasks": {"road": FAST_TASK},
        }
    )
    m = run_transfer(
        "road", params, models_root=tmp_path / "m", metrics_root=tmp_path / "x", track=False, progress=False
    )
    assert set(m["results"]) == {"oracle"}


def test_turn_marks_name_each_turn_of_a_route_with_its_hidden_delay(turns_root):
    """The road_turns pictures label every turn of a route: its movement and its delay (issue 16's drawings)."""
    from nar.natural import load_natural
    from nar.transfer.evaluate.figures import _path_nodes, turn_marks

    ds = load_natural(turns_root / "road_turns" / "test")
    marked = 0
    for i in range(len(ds)):
        ex = ds[i]
        nodes = _path_nodes(ex.pi, ex.source, ex.target)
        seg = {(int(u), int(v)): e for e, (u, v) in enumerate(ex.edge_index.tolist())}
        for v, letter, delay in turn_marks(ex, nodes):
            a, c = nodes[nodes.index(v) - 1], nodes[nodes.index(v) + 1]
            e, f = seg[(a, v)], seg[(v, c)]
            (k,) = np.flatnonzero(ex.inputs["turn_next"][e] == f)
            angle = float(ex.meta["turn_angle"][e, k])
            assert {"L": angle > 0, "R": angle < 0, "U": abs(angle) > 90}[letter], (letter, angle)
            assert delay == pytest.approx(float(ex.hidden["turn_cost"][e, k])) and delay >= 0
            marked += 1
        straight = sum(
            int(
                ex.meta["turn_movement"][
                    seg[(a, b)], np.flatnonzero(ex.inputs["turn_next"][seg[(a, b)]] == seg[(b, c)])[0]
                ]
            )
            == 1
            for a, b, c in zip(nodes, nodes[1:], nodes[2:], strict=False)
        )
        assert len(turn_marks(ex, nodes)) + straight == max(0, len(nodes) - 2)
    assert marked > 0  # the tiny split's routes do turn


def test_the_figures_know_a_turn_task_by_its_registry_entry(turns_root, natural_root):
    """One test of "is this a turn task" for the title and the marks: the registry entry, whose examples carry
    the turn index the marks read."""
    from nar.natural import load_natural
    from nar.natural.config import TASKS
    from nar.transfer.evaluate.figures import is_turn_task

    assert [t for t in TASKS if is_turn_task(t)] == ["road_turns"]
    assert "turn_next" in load_natural(turns_root / "road_turns" / "test")[0].inputs
    assert "turn_next" not in load_natural(natural_root / "road" / "test")[0].inputs


def test_turn_tree_hinge_is_zero_on_the_true_costs_and_charges_costs_that_reroute(turns_root):
    """The edge-based hinge (bottleneck_turns' tree_hinge): the true segment and turn times satisfy every
    chain-versus-detour condition; costs under which the solver picks other pointers break some, and the
    gradient step that lowers the loss moves the solved tree towards the true one."""
    import torch

    from nar.transfer.config import TaskTransferParams
    from nar.transfer.solver import solve_turn_tree, turn_tree_hinge_loss
    from nar.transfer.train import TaskData

    data = TaskData.load(str(turns_root), "road_turns", TaskTransferParams(width=8))
    split = data.splits["test"]
    b = split.batch(range(len(split)))
    turn = true_slot_costs(split)
    seg = b.edge_cost.double()
    assert turn_tree_hinge_loss(seg, turn, b, margin=0.0).item() == pytest.approx(0.0, abs=1e-9)
    # a margin of a mean segment's time puts some detours inside it (these costs are seconds, not normalised)
    assert turn_tree_hinge_loss(seg, turn, b, margin=float(seg.mean())).item() > 0

    rng = np.random.default_rng(0)
    wrong_seg = torch.from_numpy(rng.uniform(0.1, 1.0, len(seg))).requires_grad_(True)
    wrong_turn = torch.from_numpy(rng.uniform(0.0, 0.5, len(turn))).requires_grad_(True)
    keep = ~b.is_source
    before = (solve_turn_tree(wrong_seg, wrong_turn, b)[0] == b.pi)[keep].float().mean().item()
    assert before < 1.0
    opt = torch.optim.SGD([wrong_seg, wrong_turn], lr=0.05)
    for _ in range(200):
        loss = turn_tree_hinge_loss(wrong_seg, wrong_turn, b, margin=0.01)
        opt.zero_grad()
        loss.backward()
        opt.step()
        with torch.no_grad():
            wrong_seg.clamp_(min=1e-3)
            wrong_turn.clamp_(min=0.0)
    after = (solve_turn_tree(wrong_seg.detach(), wrong_turn.detach(), b)[0] == b.pi)[keep].float().mean().item()
    assert after > before
