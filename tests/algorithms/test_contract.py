"""The calling convention, checked over every registered algorithm."""

from __future__ import annotations

import numpy as np
import pytest

from nar.algorithms import ALGORITHMS, execute, get_algorithm
from nar.algorithms.base import Graphs
from nar.algorithms.spec import Location, Stage, Type, validate_trajectory

from .conftest import assert_padding_repeats_final_state, graph_suite, random_graphs

NAMES = sorted(ALGORITHMS)

# Output fields and the hint that tracks them (CLRS names them with an ``_h`` suffix).
TRACKED = {"pi": "pi_h", "Pi": "Pi_h", "topo": "topo_h", "topo_head": "topo_head_h"}


def test_registry_has_every_algorithm():
    assert set(NAMES) == {"bfs", "dfs", "topological_sort", "bellman_ford", "dijkstra", "mst_prim", "floyd_warshall"}
    for name, algo in ALGORITHMS.items():
        assert algo.name == name == algo.spec.name


def test_unknown_algorithm_names_the_available_ones():
    with pytest.raises(KeyError, match="bellman_ford"):
        get_algorithm("quicksort")


@pytest.mark.parametrize("name", NAMES)
def test_spec_fields_follow_the_conventions(name):
    spec = ALGORITHMS[name].spec
    inputs = {f.name for f in spec.inputs}
    assert {"pos", "adj"} <= inputs
    assert ("s" in inputs) == spec.graph.needs_source
    if spec.graph.weighted:
        assert "A" in inputs
    assert not spec.graph.acyclic or spec.graph.directed
    assert spec.hints and spec.outputs
    for out in spec.outputs:
        hint = spec.field(TRACKED[out.name])
        assert (hint.stage, hint.location, hint.type) == (Stage.HINT, out.location, out.type)
    assert spec.field("pos").location == Location.NODE and spec.field("adj").type == Type.MASK


@pytest.mark.parametrize("name", NAMES)
def test_every_trajectory_is_valid_and_ends_at_its_outputs(name):
    algo = ALGORITHMS[name]
    for g in graph_suite(seed=1, kind=algo.spec.graph, per_size=4):
        trace = algo.run(g)
        assert trace.lengths.shape == (g.batch_size,) and trace.lengths.min() >= 1
        for h in trace.hints.values():
            assert h.shape[:2] == (g.batch_size, trace.lengths.max())
        assert_padding_repeats_final_state(trace)
        np.testing.assert_array_equal(trace.inputs["pos"], g.pos)
        np.testing.assert_array_equal(trace.inputs["adj"], g.adj_with_self_loops())
        if "s" in trace.inputs:
            np.testing.assert_array_equal(trace.inputs["s"], g.source_one_hot())
        if "A" in trace.inputs:
            np.testing.assert_array_equal(trace.inputs["A"], g.A)
        for traj in trace.trajectories():
            validate_trajectory(algo.spec, traj)
            for out, hint in TRACKED.items():
                if out in traj.outputs:
                    np.testing.assert_array_equal(traj.hints[hint][-1], traj.outputs[out])


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("n", [1, 2, 5, 16, 33])
def test_batched_run_equals_runs_of_one_graph(name, n):
    algo = ALGORITHMS[name]
    g = random_graphs(np.random.default_rng(n), n, 12, algo.spec.graph)
    batched = algo.run(g)
    for b in range(g.batch_size):
        one = Graphs(A=g.A[b : b + 1], adj=g.adj[b : b + 1], pos=g.pos[b : b + 1], source=g.source[b : b + 1])
        single = algo.run(one)
        assert single.lengths[0] == batched.lengths[b]
        expected, got = single.trajectory(0), batched.trajectory(b)
        for group in ("inputs", "hints", "outputs"):
            for key, value in getattr(expected, group).items():
                np.testing.assert_array_equal(getattr(got, group)[key], value, err_msg=f"{group} {key}")


@pytest.mark.parametrize("name", NAMES)
def test_run_is_deterministic_and_leaves_its_input_alone(name):
    algo = ALGORITHMS[name]
    g = random_graphs(np.random.default_rng(7), 9, 8, algo.spec.graph)
    before = {k: getattr(g, k).copy() for k in ("A", "adj", "pos", "source")}
    first, second = algo.run(g), algo.run(g)
    for k, v in before.items():
        np.testing.assert_array_equal(getattr(g, k), v)
    np.testing.assert_array_equal(first.lengths, second.lengths)
    for group in ("inputs", "hints", "outputs"):
        for key, value in getattr(first, group).items():
            np.testing.assert_array_equal(getattr(second, group)[key], value)


@pytest.mark.parametrize("name", NAMES)
def test_execute_runs_one_graph(name):
    A = np.array([[0, 1, 0], [1, 0, 1], [0, 1, 0]], dtype=float)
    if ALGORITHMS[name].spec.graph.acyclic:
        A = np.triu(A)
    traj = execute(name, A)
    validate_trajectory(ALGORITHMS[name].spec, traj)
    assert traj.num_nodes == 3
