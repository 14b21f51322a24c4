"""``nar.execute`` and ``nar execute``: a pretrained model on user graphs, and every bad input as one line.

The model is untrained (hidden 16): these tests check the mechanics (shapes, valid pointers, the
exact answer, the file formats and ids, the refusals), not accuracy, which
benchmarks/bench_scale.py measures on trained runs.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import networkx as nx
import numpy as np
import pytest
import safetensors.torch
import torch
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import dijkstra

from nar.algorithms import ALGORITHMS
from nar.cli import main
from nar.errors import UserError
from nar.execute import Executor, load_pretrained
from nar.models import EncodeProcessDecode, ModelConfig, ProcessorConfig

KNOWN = ["bfs", "bellman_ford", "mst_prim"]  # not dijkstra: "an algorithm the model doesn't know"


def save_run(out: Path, algorithms: list[str], hidden: int = 16, full_adjacency: bool = False) -> Path:
    """A pretraining run directory as nar.training.pretrain.run_pretrain writes it (model.json + safetensors);
    ``full_adjacency``: all-pairs messages, no sparse step (as the dijkstra and mst_prim runs of params.yaml)."""
    torch.manual_seed(0)
    processor = ProcessorConfig(kind="mpnn", hidden=hidden, msg_mlp_layers=1, full_adjacency=full_adjacency)
    config = ModelConfig(processor=processor, messages="dense" if full_adjacency else "sparse")
    model = EncodeProcessDecode([ALGORITHMS[a].spec for a in algorithms], config)
    out.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    safetensors.torch.save_file(state, str(out / "model.safetensors"))
    (out / "model.json").write_text(json.dumps({"name": out.name, "algorithms": algorithms, "model": config.to_dict()}))
    return out


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    return save_run(tmp_path_factory.mktemp("models") / "tiny", KNOWN)


@pytest.fixture(scope="module")
def executor(run_dir) -> Executor:
    return load_pretrained(run_dir)


@pytest.fixture(scope="module")
def dense_run_dir(tmp_path_factory) -> Path:
    return save_run(tmp_path_factory.mktemp("models") / "dense", ["dijkstra", "mst_prim"], full_adjacency=True)


@pytest.fixture(scope="module")
def dense_executor(dense_run_dir) -> Executor:
    return load_pretrained(dense_run_dir)


def weighted(g: nx.Graph, seed: int = 0) -> nx.Graph:
    rng = np.random.default_rng(seed)
    for u, v in g.edges:
        g.edges[u, v]["weight"] = float(rng.uniform(0.05, 1.0))
    return g


def scipy_predecessors(g: nx.Graph, source: int) -> np.ndarray:
    """Shortest-path parents straight from scipy (self at the source and at unreachable nodes)."""
    nodes = list(g.nodes)
    index = {v: i for i, v in enumerate(nodes)}
    n = len(nodes)
    rows = [(index[u], index[v], d["weight"]) for u, v, d in g.edges(data=True)]
    if not g.is_directed():
        rows += [(v, u, w) for u, v, w in rows]
    u, v, w = (np.array(c) for c in zip(*rows, strict=True))
    _, pred = dijkstra(csr_matrix((w, (u, v)), shape=(n, n)), directed=True, indices=source, return_predecessors=True)
    return np.where(pred < 0, np.arange(n), pred)


GRAPHS = {
    "grid": lambda: weighted(nx.grid_2d_graph(4, 5)),
    "path": lambda: weighted(nx.path_graph(9)),
    "directed": lambda: weighted(nx.gnp_random_graph(12, 0.3, seed=1, directed=True)),
}


@pytest.mark.parametrize("name", sorted(GRAPHS))
@pytest.mark.parametrize("algorithm", ["bfs", "bellman_ford"])
def test_pointers_are_node_ids(executor, name, algorithm):
    g = GRAPHS[name]()
    result = executor.run(algorithm, g, source=0)
    n = g.number_of_nodes()
    assert result.pi.shape == (n,) and np.issubdtype(result.pi.dtype, np.integer)
    assert result.pi.min() >= 0 and result.pi.max() < n
    assert result.steps >= 1 and result.seconds >= 0 and result.accuracy is None


@pytest.mark.parametrize("name", sorted(GRAPHS))
def test_compare_gives_scipy_answer(executor, name):
    g = GRAPHS[name]()
    result = executor.run("bellman_ford", g, source=0, compare=True, steps=3)
    assert result.steps == 3
    assert 0.0 <= result.accuracy <= 1.0
    np.testing.assert_array_equal(result.exact_pi, scipy_predecessors(g, 0))


def test_mst_prim_on_undirected_graph(executor):
    g = GRAPHS["grid"]()
    result = executor.run("mst_prim", g, source=3, compare=True)
    assert result.pi.shape == (20,) and 0.0 <= result.accuracy <= 1.0
    tree = nx.minimum_spanning_tree(g)
    nodes = list(g.nodes)
    for v, p in enumerate(result.exact_pi):  # every exact parent is a tree edge (the root points to itself)
        assert v == 3 if p == v else tree.has_edge(nodes[v], nodes[p])


# --------------------------------------------------------------------------- processors without a sparse step


def test_dense_run_equals_the_model_on_the_algorithms_own_batch(dense_executor):
    """A full_adjacency processor runs densely: the executor's one-graph Batch gives the pointers that the
    model gives on the collated trace of the same graph (nar.algorithms: its inputs and step-0 hints), on a
    directed graph with one-way weights, so a transposed edge field would show."""
    from nar.algorithms import execute as trace
    from nar.data.batching import collate

    assert not dense_executor.sparse
    g = weighted(nx.gnp_random_graph(7, 0.4, seed=3, directed=True), seed=2)
    n = g.number_of_nodes()
    A = nx.to_numpy_array(g, nodelist=range(n), weight="weight")  # A[u, v]: the weight of u -> v
    traj = trace("dijkstra", A, A > 0, source=0)
    with torch.no_grad():
        logits = dense_executor.model(collate(ALGORITHMS["dijkstra"].spec, [traj])).outputs["pi"]  # (1, n, n)
    result = dense_executor.run("dijkstra", g, source=0, steps=traj.length - 1)
    np.testing.assert_array_equal(result.pi, logits[0].argmax(-1).numpy())


@pytest.mark.parametrize("algorithm", ["dijkstra", "mst_prim"])
def test_dense_run_gives_node_pointers_and_accuracy(dense_executor, algorithm):
    g = weighted(nx.cycle_graph(6), seed=4)
    g.add_edge(0, 3, weight=0.7)
    result = dense_executor.run(algorithm, g, source=0, compare=True)
    assert result.pi.shape == (6,) and np.issubdtype(result.pi.dtype, np.integer)
    assert result.pi.min() >= 0 and result.pi.max() < 6
    assert result.steps == 6 and result.seconds >= 0  # one step per reachable node
    assert 0.0 <= result.accuracy <= 1.0 and result.exact_pi.shape == (6,)


@pytest.mark.fault(category="data", fault="graph too big for a dense run", expected="UserError, one line")
def test_dense_run_refuses_a_graph_too_big_for_memory(dense_executor):
    n = 4096  # 4096² pairs x hidden 16 x 4 bytes x 16 tensors = 16 GiB > 8 GiB, before hints
    path = (n, np.stack([np.arange(n - 1), np.arange(1, n)], axis=1), np.ones(n - 1))
    with pytest.raises(
        UserError, match=r"4,096 nodes run densely .* need about [\d.]+ GiB at hidden 16; the limit is 8 GiB"
    ) as err:
        dense_executor.run("dijkstra", path, source=0)
    assert "\n" not in str(err.value)


def test_cli_runs_a_dense_model(workspace, dense_run_dir):
    argv = execute(
        "--graph", "g.edgelist", "--source", "a", "--algorithm", "dijkstra", "--compare", model=dense_run_dir
    )
    assert main([*argv, "--out", "r.json"]) == 0
    report = json.loads((workspace / "r.json").read_text())
    assert report["algorithm"] == "dijkstra" and set(report["predecessors"].values()) <= {"a", "b", "c", "d"}
    assert report["exact_predecessors"] == {"a": "a", "b": "a", "c": "b", "d": "c"}
    assert 0.0 <= report["accuracy"] <= 1.0


def _nan_graph() -> nx.Graph:
    g = nx.path_graph(3)
    nx.set_edge_attributes(g, 1.0, "weight")
    g.edges[0, 1]["weight"] = float("nan")
    return g


def _negative_graph() -> nx.Graph:
    g = weighted(nx.path_graph(3))
    g.edges[1, 2]["weight"] = -0.5
    return g


@pytest.mark.fault(category="data", fault="bad graph for Executor.run", expected="UserError, one line", inputs=6)
@pytest.mark.parametrize(
    ("algorithm", "graph", "source", "message"),
    [
        ("bellman_ford", nx.Graph, 0, "no nodes"),
        ("bellman_ford", _nan_graph, 0, "NaN"),
        ("bellman_ford", _negative_graph, 0, "negative weights"),
        ("bellman_ford", lambda: nx.path_graph(4), 4, "not a node"),
        ("dijkstra", lambda: nx.path_graph(4), 0, "this model executes"),
        ("mst_prim", lambda: nx.DiGraph([(0, 1), (1, 2)]), 0, "undirected"),
    ],
)
def test_run_refuses_bad_inputs(executor, algorithm, graph, source, message):
    with pytest.raises(UserError, match=message) as err:
        executor.run(algorithm, graph(), source=source)
    assert "\n" not in str(err.value)


@pytest.mark.fault(category="config", fault="not a pretraining run", expected="UserError, one line", inputs=2)
def test_load_refuses_non_run(tmp_path, monkeypatch):
    # an empty registry of its own (the workspace's may hold a real champion, which loads)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'empty.db'}")
    for where in (tmp_path, "models:/nar-processor@champion"):
        with pytest.raises(UserError) as err:
            load_pretrained(where)
        assert "\n" not in str(err.value)


# --------------------------------------------------------------------------- the CLI


@pytest.fixture
def workspace(tmp_path, monkeypatch, run_dir) -> Path:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "g.edgelist").write_text("# u v w\na b 0.5\nb c 0.25\na c 1.0\nc d 0.1\n")
    return tmp_path


def execute(*args: str, model: str | Path) -> list[str]:
    return ["execute", "--model", str(model), *args]


def test_cli_writes_predecessors_by_file_id(workspace, run_dir, capsys):
    argv = execute("--graph", "g.edgelist", "--source", "a", "--algorithm", "bellman_ford", "--compare", model=run_dir)
    assert main([*argv, "--out", "out/result.json"]) == 0
    printed = capsys.readouterr().out
    assert "4 nodes, 4 undirected edges" in printed and "pointer accuracy" in printed
    report = json.loads((workspace / "out/result.json").read_text())
    assert report["source"] == "a" and report["nodes"] == 4 and report["algorithm"] == "bellman_ford"
    assert set(report["predecessors"]) == {"a", "b", "c", "d"}
    assert set(report["predecessors"].values()) <= {"a", "b", "c", "d"}
    assert report["exact_predecessors"] == {"a": "a", "b": "a", "c": "b", "d": "c"}  # a-b-c (0.75) beats a-c (1.0)
    assert 0.0 <= report["accuracy"] <= 1.0


def test_cli_graphml_round_trip(workspace, run_dir):
    g = weighted(nx.DiGraph(nx.gnp_random_graph(10, 0.35, seed=4, directed=True)))
    g = nx.relabel_nodes(g, {v: f"n{v}" for v in g.nodes})
    for u, v in g.edges:
        g.edges[u, v]["length"] = g.edges[u, v].pop("weight")
    nx.write_graphml(g, workspace / "city.graphml")
    argv = execute("--graph", "city.graphml", "--source", "n0", "--weight", "length", "--compare", model=run_dir)
    assert main([*argv, "--algorithm", "bellman_ford", "--steps", "4", "--out", "r.json"]) == 0
    report = json.loads((workspace / "r.json").read_text())
    assert report["directed"] and report["edges"] == g.number_of_edges() and report["steps"] == 4
    assert list(report["predecessors"]) == list(g.nodes)  # the file's ids, in the file's order
    for u, d in g.edges.items():
        g.edges[u]["weight"] = d["length"]
    exact = scipy_predecessors(g, 0)
    nodes = list(g.nodes)
    assert report["exact_predecessors"] == {nodes[v]: nodes[p] for v, p in enumerate(exact)}


def test_cli_json_format(workspace, run_dir):
    (workspace / "g.json").write_text(
        json.dumps({"num_nodes": 4, "edges": [[0, 1], [1, 2], [2, 3]], "weights": [1, 2, 3]})
    )
    argv = execute(
        "--graph", "g.json", "--source", "0", "--algorithm", "bfs", "--directed", "--out", "r.json", model=run_dir
    )
    assert main(argv) == 0
    report = json.loads((workspace / "r.json").read_text())
    assert report["directed"] and set(report["predecessors"]) == {"0", "1", "2", "3"}
    assert all(isinstance(p, int) for p in report["predecessors"].values())


BAD_CLI = [
    ("missing file", ["--graph", "nope.graphml", "--source", "a"], "no such file"),
    ("unknown format", ["--graph", "g.csv", "--source", "a"], "unknown graph format"),
    ("unparsable weight", ["--graph", "bad_weight.edgelist", "--source", "a"], "is not a number"),
    ("no nodes", ["--graph", "empty.json", "--source", "0"], "no nodes"),
    ("NaN weight", ["--graph", "nan.edgelist", "--source", "a"], "NaN"),
    ("negative weight", ["--graph", "negative.edgelist", "--source", "a"], "negative weights"),
    ("source not a node", ["--graph", "g.edgelist", "--source", "z"], "not a node"),
    ("unknown algorithm", ["--graph", "g.edgelist", "--source", "a", "--algorithm", "dijkstra"], "this model executes"),
    ("--out outside", ["--graph", "g.edgelist", "--source", "a", "--out", "../escape.json"], "outside the workspace"),
    ("not a run", ["--graph", "g.edgelist", "--source", "a", "--model", "."], "not a pretraining run"),
    ("broken graphml", ["--graph", "broken.graphml", "--source", "a"], "cannot read GraphML"),
    ("steps < 1", ["--graph", "g.edgelist", "--source", "a", "--steps", "0"], "steps must be >= 1"),
]


@pytest.mark.fault(category="data", fault="bad input to nar execute", expected="one line, exit 2", inputs=len(BAD_CLI))
@pytest.mark.parametrize(("case", "args", "message"), BAD_CLI, ids=[c[0] for c in BAD_CLI])
def test_cli_bad_inputs_are_one_line(workspace, run_dir, capsys, case, args, message):
    (workspace / "g.csv").write_text("a,b,1\n")
    (workspace / "bad_weight.edgelist").write_text("a b 1.0\nb c heavy\n")
    (workspace / "empty.json").write_text(json.dumps({"num_nodes": 0, "edges": [], "weights": []}))
    (workspace / "nan.edgelist").write_text("a b nan\n")
    (workspace / "negative.edgelist").write_text("a b 1\nb c -2\n")
    (workspace / "broken.graphml").write_text("<graphml><graph")
    argv = ["execute", "--model", str(run_dir), "--algorithm", "bellman_ford", *args]
    if "--model" in args:
        argv = ["execute", "--algorithm", "bellman_ford", *args]
    if "--algorithm" in args:
        argv = ["execute", "--model", str(run_dir), *args]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("nar execute: error:") and message in err[0], err
    assert not (workspace.parent / "escape.json").exists()


@pytest.mark.fault(category="data", fault="nar execute on a missing file, as a process", expected="no traceback")
def test_cli_process_prints_no_traceback(workspace, run_dir):
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "nar.cli",
            "execute",
            "--model",
            str(run_dir),
            "--graph",
            "gone.graphml",
            "--source",
            "0",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [f"nar execute: error: {Path('gone.graphml')}: no such file"]


def test_suite_scores_cover_every_family_with_the_algorithms_own_steps():
    """What nar pretrain records (metrics.scale): one score per family of the n = 64 suite, in %."""
    from nar.algorithms import ALGORITHMS
    from nar.execute import Executor, reference_steps, suite_scores
    from nar.models import EncodeProcessDecode, ModelConfig, ProcessorConfig
    from nar.scale.reference import exact
    from nar.scale.suite import FAMILIES, suite

    torch.manual_seed(0)
    config = ModelConfig(processor=ProcessorConfig(kind="mpnn", hidden=8), messages="sparse")
    executor = Executor(EncodeProcessDecode([ALGORITHMS["bellman_ford"].spec], config))
    scores = suite_scores(executor, ["bellman_ford"], sizes=(64,), graphs_per_cell=1)
    families = scores["bellman_ford"]["64"]
    expected = {g.family for g in suite(sizes=(64,), graphs_per_cell=1) if g.num_nodes == 64}
    assert set(families) == expected and expected <= set(FAMILIES)
    assert all(0.0 <= v <= 100.0 for v in families.values())
    assert scores["score"] == pytest.approx(sum(families.values()) / len(families))
    g = suite(sizes=(64,), families=["path"], graphs_per_cell=1)[0]
    assert reference_steps("bellman_ford", exact("bellman_ford", g)) == 63  # a path's depth from its end


def test_suite_scores_run_dijkstra_densely():
    """A dijkstra model without a sparse step (full_adjacency) is scored on the suite too, every family."""
    from nar.execute import suite_scores
    from nar.scale.suite import suite

    torch.manual_seed(0)
    config = ModelConfig(
        processor=ProcessorConfig(kind="mpnn", hidden=8, full_adjacency=True), decode_hints=False, encode_hints=False
    )
    executor = Executor(EncodeProcessDecode([ALGORITHMS["dijkstra"].spec], config))
    assert not executor.sparse
    scores = suite_scores(executor, sizes=(64,), graphs_per_cell=1)
    families = scores["dijkstra"]["64"]
    assert set(families) == {g.family for g in suite(sizes=(64,), graphs_per_cell=1) if g.num_nodes == 64}
    assert all(0.0 <= v <= 100.0 for v in families.values())
    assert scores["score"] == pytest.approx(sum(families.values()) / len(families))


def test_initial_hints_on_a_flat_batch_of_two_graphs():
    """Step 0 on graphs of 2 and 3 nodes, sources local 1 and 0 (global 1 and 2): pointers to themselves in
    global ids, zeros, the source one-hot; (V, 1) each, in the spec's hint order."""
    from nar.execute import initial_hints

    is_source = torch.tensor([False, True, True, False, False])  # (V,) = (5,)
    hints = initial_hints("dijkstra", is_source)
    assert list(hints) == [f.name for f in ALGORITHMS["dijkstra"].spec.hints]
    assert all(h.shape == (5, 1) for h in hints.values())
    assert hints["pi_h"].dtype == torch.int64 and hints["pi_h"][:, 0].tolist() == [0, 1, 2, 3, 4]
    for name in ("d", "mark"):
        assert hints[name].dtype == torch.float32 and hints[name][:, 0].tolist() == [0.0] * 5
    for name in ("in_queue", "u"):
        assert hints[name].dtype == torch.float32 and hints[name][:, 0].tolist() == [0.0, 1.0, 1.0, 0.0, 0.0]
    assert list(initial_hints("bfs", is_source)) == ["reach_h", "pi_h"]
