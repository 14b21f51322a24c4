"""The ``ceiling`` variant: the whole pretrained network run on the hidden true costs, verified against the record."""

import dataclasses

import numpy as np
import pytest

from nar.errors import NarError, UserError
from nar.execute import executor_from_files
from nar.transfer.record import load_processor_record
from nar.transfer.train import TaskData, ceiling_predictions, untrained_predictions

from .test_stage import tiny_params


@pytest.fixture(scope="module")
def road(natural_root, processor_dir):
    params = tiny_params(natural_root, processor_dir)
    data = TaskData.load(str(natural_root), "road", params.task("road"))
    return data, load_processor_record(str(processor_dir))


def test_ceiling_runs_the_stored_network_on_the_true_costs(road):
    data, record = road
    assert set(record.network) == {"model.json", "model.safetensors"}
    split = data.splits["test"]
    preds = ceiling_predictions(split, data.algorithm, 3, processor=record)
    executor = executor_from_files(record.network, record.uri)
    assert len(preds) == 3
    for ex, pi in zip(split.examples[:3], preds, strict=True):
        want = executor.run(data.algorithm, (ex.num_nodes, ex.edge_index, ex.hidden["edge_cost"]), source=ex.source)
        np.testing.assert_array_equal(pi, want.pi)
        assert pi.shape == (ex.num_nodes,)
        # every pointer is the node itself or an in-neighbour: the executor picks among real edges
        edges = set(map(tuple, ex.edge_index.tolist()))
        assert all(int(p) == v or (int(p), v) in edges for v, p in enumerate(pi))
    assert untrained_predictions("ceiling", split, data.algorithm, 3, processor=record)[0].tolist() == preds[0].tolist()


def test_ceiling_builds_the_network_once_for_every_split(road):
    """One executor per network, reused across splits (and the pictures): the same predictions as a fresh one."""
    from nar.transfer.train import _network_executor

    data, record = road
    _network_executor.cache_clear()
    for split in data.splits.values():
        preds = ceiling_predictions(split, data.algorithm, 2, processor=record)
        executor = executor_from_files(record.network, record.uri)
        for ex, pi in zip(split.examples[:2], preds, strict=True):
            want = executor.run(data.algorithm, (ex.num_nodes, ex.edge_index, ex.hidden["edge_cost"]), ex.source)
            np.testing.assert_array_equal(pi, want.pi)
    info = _network_executor.cache_info()
    assert info.misses == 1 and info.hits == len(data.splits) - 1


def test_ceiling_refuses_a_network_that_is_not_the_registered_processor(road):
    data, record = road
    forged = dataclasses.replace(record, sha256="0" * 64)
    with pytest.raises(UserError, match="not the registered one"):
        ceiling_predictions(data.splits["test"], data.algorithm, 1, processor=forged)


def test_ceiling_without_a_processor_or_network_says_so(road):
    data, record = road
    with pytest.raises(NarError, match="runs the pretrained processor, and none was given"):
        untrained_predictions("ceiling", data.splits["test"], data.algorithm, 1)
    with pytest.raises(NarError, match="holds the processor only"):
        ceiling_predictions(data.splits["test"], data.algorithm, 1, processor=dataclasses.replace(record, network={}))
