import pytest

from nar.data.generate import generate_split
from nar.data.samplers import GraphSamplerConfig

SIZES = (4, 7, 11)
COUNT = 60


@pytest.fixture(scope="session")
def bf_split(tmp_path_factory):
    """A small Bellman-Ford split in 3 shards (do not modify: copy it first)."""
    out = tmp_path_factory.mktemp("bf") / "train"
    manifest = generate_split(
        "bellman_ford",
        COUNT,
        SIZES,
        seed=5,
        out_dir=out,
        sampler=GraphSamplerConfig(),
        shard_size=25,
        progress=False,
    )
    return out, manifest
