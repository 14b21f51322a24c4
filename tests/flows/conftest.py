"""Fixtures for the flow tests: Prefect's test harness (own PREFECT_HOME per session) and a tiny
pipeline in a temporary git + DVC repository (the approach of tests/test_pipeline.py, copied)."""

from __future__ import annotations

import atexit
import os
import shutil
import sys
import tempfile
from pathlib import Path

# Prefect reads its settings at import: set them before anything imports prefect.
_PREFECT_HOME = tempfile.mkdtemp(prefix="nar-flows-prefect-")
atexit.register(shutil.rmtree, _PREFECT_HOME, ignore_errors=True)
os.environ["PREFECT_HOME"] = _PREFECT_HOME
os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
os.environ["PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS"] = "90"
os.environ["DVC_NO_ANALYTICS"] = "1"
os.environ["MLFLOW_DISABLE_TELEMETRY"] = "true"
os.environ.pop("PREFECT_API_URL", None)
os.environ.pop("MLFLOW_TRACKING_URI", None)

import pytest  # noqa: E402

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
for path in (ROOT, HERE):  # `flows` is a top-level package beside `nar`; flowtools sits here
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))
# Dask worker processes and served flow runs import `flows` too
os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)

from flowtools import make_repo  # noqa: E402


def pytest_collection_modifyitems(config, items):
    # DVC 3.67 itself triggers pygtrie's deprecation warning on every repo it opens
    here = Path(__file__).parent
    for item in items:
        if here in Path(item.fspath).parents:
            item.add_marker(pytest.mark.filterwarnings("ignore:_NoneStep.value:DeprecationWarning"))


@pytest.fixture(scope="session")
def harness():
    """Prefect's test harness: a temporary server for the whole session (about 10 s to start)."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=90):
        yield


@pytest.fixture(scope="session")
def pipeline_repo(tmp_path_factory) -> Path:
    return make_repo(tmp_path_factory.mktemp("flows") / "repo")


@pytest.fixture(scope="session")
def first_run(harness, pipeline_repo):
    """The blueprint flow over the whole tiny pipeline, once per session: (repo, flow state, result)."""
    from flows.blueprint import blueprint

    state = blueprint(root=str(pipeline_repo), retry_delay_seconds=1, return_state=True)
    return pipeline_repo, state
