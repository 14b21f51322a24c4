"""benchmarks/bench_recipe.py: overrides change the named keys of the stage's run, the validation graphs are
the project's samplers' (one-way streets when asked), and a bad override stops with one line."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def bench() -> Iterator[ModuleType]:
    with pytest.MonkeyPatch.context() as patch:
        patch.syspath_prepend(str(ROOT / "benchmarks"))
        import bench_recipe

        yield bench_recipe


def test_overrides_set_dotted_keys_as_yaml_values(bench: ModuleType) -> None:
    run = {"mix": {"sizes": [8, 16], "oneway": 0.3}, "train": {"steps": 4000}}
    out = bench.override(run, ["mix.sizes=[8,16,128]", "train.steps=6000", "model.hidden=128"])
    assert out == {"mix": {"sizes": [8, 16, 128], "oneway": 0.3}, "train": {"steps": 6000}, "model": {"hidden": 128}}
    with pytest.raises(SystemExit, match="expected dotted.key=value"):
        bench.override(run, ["train.steps"])


def test_validation_graphs_follow_the_item(bench: ModuleType) -> None:
    two_way = bench.draw_val("bellman_ford", "grid:25", np.random.default_rng(0), count=2)
    one_way = bench.draw_val("bellman_ford", "grid:25:0.5", np.random.default_rng(0), count=2)
    assert two_way.num_nodes.tolist() == [25, 25]
    adj = lambda b: b.inputs["A"][0].numpy() > 0  # noqa: E731  the first graph's weights (n, n)
    assert (adj(two_way) == adj(two_way).T).all()
    assert not (adj(one_way) == adj(one_way).T).all()
    # sampler fields by name: exact lengths (no weight noise), one-way chains
    exact = bench.draw_val("bellman_ford", "delaunay:30:0.3:oneway_chain=4:weight_noise=0", np.random.default_rng(0), 2)
    w = exact.inputs["A"][0].numpy()
    assert not (adj(exact) == adj(exact).T).all()
    both = (w > 0) & (w.T > 0)
    assert np.allclose(w[both], w.T[both])  # the two directions of a two-way street: the same exact length
    with pytest.raises(SystemExit, match="'delaunay:30:colour=red'.*colour"):
        bench.draw_val("bellman_ford", "delaunay:30:colour=red", np.random.default_rng(0), 2)


def test_a_saved_network_loads_as_a_pretraining_run(bench: ModuleType, tmp_path: Path) -> None:
    from types import SimpleNamespace

    from nar.algorithms import ALGORITHMS
    from nar.execute import load_pretrained
    from nar.models import EncodeProcessDecode, ModelConfig
    from nar.models.processors import ProcessorConfig
    from nar.registry import load_registered, weights_sha256

    config = ModelConfig(processor=ProcessorConfig(kind="mpnn", hidden=8), messages="sparse")
    model = EncodeProcessDecode([ALGORITHMS["bellman_ford"].spec], config)
    run = SimpleNamespace(model=config, train=SimpleNamespace(algorithms=["bellman_ford"]))
    bench.save_network(model, run, tmp_path / "net", "bellman_ford-recipe")
    executor = load_pretrained(tmp_path / "net")
    assert executor.algorithms == ["bellman_ford"]
    assert weights_sha256(executor.model) == weights_sha256(model)
    assert load_registered(str(tmp_path / "net"), allow_unverified=True).sha256 == weights_sha256(model.processor)


def test_a_saved_network_scores_as_the_model_that_was_saved(bench: ModuleType, tmp_path: Path) -> None:
    """``--model DIR`` scores a saved network on the same validation draw as a training run of that seed."""
    from types import SimpleNamespace

    import torch

    from nar.algorithms import ALGORITHMS
    from nar.models import EncodeProcessDecode, ModelConfig
    from nar.models.processors import ProcessorConfig

    torch.manual_seed(0)
    config = ModelConfig(
        processor=ProcessorConfig(kind="mpnn", hidden=8), messages="sparse", scalars_along_pointers=True
    )
    model = EncodeProcessDecode([ALGORITHMS["bellman_ford"].spec], config).eval()
    run = SimpleNamespace(model=config, train=SimpleNamespace(algorithms=["bellman_ford"]))
    bench.save_network(model, run, tmp_path / "net", "bellman_ford-recipe")
    items = "grid:16,path:12"
    assert bench.score_saved(tmp_path / "net", items, seed=3) == bench.score(model, "bellman_ford", items, seed=3)
    out = tmp_path / "r.json"
    args = SimpleNamespace(model=tmp_path / "net", run="bellman_ford", set=[], seed=3, val=items, out=out)
    bench.write_result(args, {"grid:16": 50.0}, {"model": "net"})
    assert "--model" in out.read_text()
    # a training override means nothing without training: refused in one line, nothing written
    refused = tmp_path / "refused.json"
    argv = ["--model", str(tmp_path / "net"), "--set", "train.steps=9", "--out", str(refused)]
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("sys.argv", ["bench_recipe.py", *argv])
        with pytest.raises(SystemExit, match="with --model nothing is trained"):
            bench.main()
    assert not refused.exists()


def test_path_validation_graphs_are_single_paths_from_one_end(bench: ModuleType) -> None:
    import networkx as nx

    for algorithm, weighted in (("bfs", False), ("bellman_ford", True)):
        batch = bench.draw_val(algorithm, "path:30", np.random.default_rng(1), count=3)
        for b in range(3):
            A = batch.inputs["A" if weighted else "adj"][b].numpy() * (1 - np.eye(30))  # (n, n), no self-loops
            g = nx.from_numpy_array(A > 0)
            source = int(batch.inputs["s"][b].argmax())
            assert nx.is_connected(g) and g.number_of_edges() == 29 and max(d for _, d in g.degree) == 2
            assert g.degree[source] == 1  # the source is an end: 29 hops to the far end
            assert max(nx.shortest_path_length(g, source).values()) == 29
            assert (A == A.T).all() and (A[A > 0] == 1.0).all() != weighted


def test_sparse_scoring_equals_the_dense_prediction(bench: ModuleType) -> None:
    import torch

    from nar.algorithms import ALGORITHMS
    from nar.models import EncodeProcessDecode, ModelConfig
    from nar.models.processors import ProcessorConfig

    torch.manual_seed(0)
    config = ModelConfig(processor=ProcessorConfig(kind="mpnn", hidden=8), messages="sparse")
    model = EncodeProcessDecode([ALGORITHMS["bellman_ford"].spec], config).eval()
    batch = bench.draw_val("bellman_ford", "grid:20", np.random.default_rng(2), count=4)
    with torch.no_grad():
        dense = (model(batch).outputs["pi"].argmax(-1) == batch.outputs["pi"])[batch.node_mask].float().mean()
    assert bench.pointer_accuracy(model, batch, "bellman_ford") == pytest.approx(float(dense))


def test_bfs_parents_count_ties_right_and_children_wrong(bench: ModuleType) -> None:
    batch = bench.draw_val("bfs", "grid:16", np.random.default_rng(3), count=1)  # a 4x4 lattice: many ties
    truth = batch.outputs["pi"][0].numpy()
    assert bench.bfs_parent_ok(batch, 0, truth).all()
    adj = batch.inputs["adj"][0].numpy() > 0.5
    np.fill_diagonal(adj, False)
    source = int(batch.inputs["s"][0].argmax())
    depth = bench.hop_depths(16, np.argwhere(adj), source)
    tied = [i for i in range(16) if ((depth == depth[i] - 1) & adj[:, i]).sum() == 2]
    assert tied  # a lattice node two hops off both axes has two parents
    other = truth.copy()
    i = tied[0]
    other[i] = next(j for j in np.flatnonzero(adj[:, i] & (depth == depth[i] - 1)) if j != truth[i])
    assert bench.bfs_parent_ok(batch, 0, other).all()
    child = next(j for j in np.flatnonzero(adj[:, i]) if depth[j] == depth[i] + 1)
    other[i] = child
    assert not bench.bfs_parent_ok(batch, 0, other)[i] and bench.bfs_parent_ok(batch, 0, other).sum() == 15
