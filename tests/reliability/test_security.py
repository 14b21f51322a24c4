"""Security: loopback-only servers by default, nothing unpickled, no writes outside the workspace, no
secrets in output, logs or MLflow."""

from __future__ import annotations

import ast
import os
import sqlite3
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from .helpers import ROOT, TINY, env, files, nar, one_line_error, stage_command, tiny, write_params, write_pretrained

CODE = sorted(p for d in ("nar", "flows") for p in (ROOT / d).rglob("*.py"))
SENTINEL_ENV = "NAR_TEST_PWNED"


# --------------------------------------------------------------------------- servers


@pytest.mark.fault(
    category="security",
    fault="servers the project starts (Dask LocalCluster and its dashboard, Prefect's temporary server and "
    "runner webserver) and any host literal in nar/ and flows/",
    expected="every one binds 127.0.0.1 unless configured otherwise; no 0.0.0.0 / '::' in the code",
    inputs=4,
)
def test_servers_bind_loopback_unless_configured():
    from flows.sweep import dask_runner

    runner = dask_runner(None, n_workers=1)
    assert runner.cluster_kwargs["host"] == "127.0.0.1"
    dashboard = runner.cluster_kwargs["dashboard_address"]
    assert dashboard is None or dashboard.startswith("127.0.0.1:")
    probe = (
        "from prefect.settings import get_current_settings as g; s = g(); "
        "print(s.server.api.host, s.runner.server.host)"
    )
    out = subprocess.run([sys.executable, "-c", probe], env=env(), capture_output=True, text=True, check=True)
    api_host, runner_host = out.stdout.split()
    assert api_host == "127.0.0.1" and runner_host in ("localhost", "127.0.0.1"), out.stdout
    wide = []
    for path in CODE:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                if "0.0.0.0" in node.value or node.value in ("::", "[::]"):
                    wide.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert not wide, wide


# --------------------------------------------------------------------------- unpickling


def _unsafe_loads(tree: ast.AST) -> list[tuple[int, str]]:
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import | ast.ImportFrom):
            names = [a.name for a in node.names] + ([node.module] if isinstance(node, ast.ImportFrom) else [])
            if any(
                n and n.split(".")[0] in ("pickle", "cPickle", "dill", "cloudpickle", "joblib", "shelve") for n in names
            ):
                found.append((node.lineno, "imports a pickle module"))
        if not isinstance(node, ast.Call):
            continue
        func = ast.unparse(node.func)
        kw = {k.arg: ast.unparse(k.value) for k in node.keywords}
        if func.endswith("torch.load") and kw.get("weights_only") != "True":
            found.append((node.lineno, "torch.load without weights_only=True"))
        if func.endswith(("np.load", "numpy.load")) and kw.get("allow_pickle") not in (None, "False"):
            found.append((node.lineno, "np.load with allow_pickle"))
        if func in ("yaml.load", "yaml.unsafe_load", "yaml.full_load"):
            found.append((node.lineno, func))
        if func.endswith(("pytorch.load_model", "pyfunc.load_model", "sklearn.load_model")):
            found.append((node.lineno, f"{func} (unpickles)"))
        if func.endswith(("pd.read_pickle", "pandas.read_pickle", "marshal.loads")):
            found.append((node.lineno, func))
    return found


@pytest.mark.fault(
    category="security",
    fault="code paths that could unpickle (pickle/dill/joblib imports, torch.load without weights_only, "
    "np.load(allow_pickle), yaml.load, mlflow *.load_model, read_pickle) anywhere in nar/ and flows/",
    expected="none: checkpoints load with weights_only=True, weights as safetensors, YAML with safe_load",
)
def test_nothing_in_the_code_unpickles():
    found = [
        f"{p.relative_to(ROOT)}:{line}: {what}" for p in CODE for line, what in _unsafe_loads(ast.parse(p.read_text()))
    ]
    assert not found, found


class _Payload:
    """Pickles to a call that would create the sentinel file named by $NAR_TEST_PWNED."""

    def __reduce__(self):
        return (os.system, (f'touch "{os.environ[SENTINEL_ENV]}"',))


@pytest.fixture
def sentinel(tmp_path, monkeypatch) -> Path:
    path = tmp_path / "pwned"
    monkeypatch.setenv(SENTINEL_ENV, str(path))
    return path


@pytest.mark.fault(
    category="security",
    fault="a training checkpoint (last.pt) replaced by one holding a pickled object that runs a command",
    expected="refused by the weights_only loader (UnpicklingError); the command never runs",
)
def test_checkpoint_with_a_pickled_object_is_refused(tmp_path, sentinel):
    import pickle

    import torch

    from nar.training import load_checkpoint

    path = tmp_path / "last.pt"
    torch.save({"step": 3, "model": {}, "extra": _Payload()}, path)
    with pytest.raises(pickle.UnpicklingError, match="Weights only load failed"):
        load_checkpoint(path)
    assert not sentinel.exists()


@pytest.mark.fault(
    category="security",
    fault="processor.safetensors of a pretrained processor replaced by a torch pickle that runs a command; "
    "then registered and loaded",
    expected="refused when read (not a safetensors file); the command never runs; nothing registered",
    lossless=True,
)
def test_pickled_processor_weights_are_refused(tmp_path, sentinel, monkeypatch):
    import torch

    from nar import registry
    from nar.errors import NarError

    pre = write_pretrained(tmp_path)
    state = dict(registry.read_pretrained(pre).processor.state_dict())
    torch.save({**state, "extra": _Payload()}, pre / "processor.safetensors")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    with pytest.raises((NarError, ValueError)):
        registry.read_pretrained(pre)
    with pytest.raises((NarError, ValueError)):
        registry.register(pre)
    assert not sentinel.exists()
    assert not (tmp_path / "models" / "registered.json").exists()


# --------------------------------------------------------------------------- paths


def _outside_forms(root: Path, outside: Path) -> dict[str, str]:
    (root / "link").symlink_to(outside, target_is_directory=True)
    return {"parent": "../outside", "absolute": str(outside / "x"), "symlink": "link/x"}


PATH_ARGS = {
    "generate": lambda p: ["generate", "--algorithm", "bfs", "--no-progress", "--out", p],
    "natural": lambda p: ["natural", "--task", "digit_grid", "--no-progress", "--out", p],
    "register": lambda p: [*stage_command("register", TINY), "--out", f"{p}/registered.json"],
    "transfer --models": lambda p: ["transfer", "--task", "road", "--no-progress", "--models", p],
    "transfer --metrics": lambda p: ["transfer", "--task", "road", "--no-progress", "--metrics", p],
    "evaluate --plots": lambda p: ["evaluate", "--plots", p],
    "evaluate --out": lambda p: ["evaluate", "--out", f"{p}/evaluate.json"],
}


@pytest.mark.fault(
    category="security",
    fault="output paths from the CLI that leave the workspace: ../outside, an absolute path, a symlink to "
    "outside; for generate, natural, register, transfer (--models, --metrics) and evaluate (--plots, --out)",
    expected="exit 2 'outside the workspace' before any work; nothing written inside or outside",
    inputs=len(PATH_ARGS) * 3,
    lossless=True,
)
def test_cli_output_paths_cannot_leave_the_workspace(tmp_path):
    def one(item):
        (command, build), (form, path) = item
        root = tmp_path / f"{command.replace(' ', '')}-{form}"
        outside = tmp_path / f"outside-{command.replace(' ', '')}-{form}"
        root.mkdir()
        outside.mkdir()
        write_params(root, TINY)
        write_pretrained(root)
        forms = _outside_forms(root, outside)
        before = files(root)
        proc = nar(build(forms[form]), root, timeout=90)
        return item, proc, files(root) == before, list(outside.iterdir()), not (root.parent / "outside").exists()

    items = [(c, f) for c in PATH_ARGS.items() for f in (("parent", None), ("absolute", None), ("symlink", None))]
    with ThreadPoolExecutor(max_workers=3) as pool:
        results = list(pool.map(one, items))
    for ((command, _), (form, _)), proc, unchanged, written, nothing_at_parent in results:
        message = one_line_error(proc, proc.args[1])
        assert "outside the workspace" in message, (command, form, message)
        assert unchanged and not written and nothing_at_parent, (command, form)


@pytest.mark.fault(
    category="security",
    fault="params.yaml evaluate.report / evaluate.notes pointing outside the workspace (../outside.md)",
    expected="exit 2 naming the key and 'outside the workspace'; nothing written",
    inputs=2,
)
def test_params_output_paths_cannot_leave_the_workspace(tmp_path):
    root = tmp_path / "ws"
    root.mkdir()
    for key in ("evaluate.report", "evaluate.notes"):
        write_params(root, tiny(**{key: "../outside.md"}))
        message = one_line_error(nar(["evaluate", "--no-mlflow"], root), "evaluate")
        assert key in message and "outside the workspace" in message, message
    assert not (tmp_path / "outside.md").exists()


# --------------------------------------------------------------------------- secrets

SECRETS = {
    "MLFLOW_TRACKING_PASSWORD": "pw-9f3e1d7a-secret",
    "MLFLOW_TRACKING_TOKEN": "tok-5b8c2e0f-secret",
    "NAR_API_KEY": "key-2d4f6a8c-secret",
    "AWS_SECRET_ACCESS_KEY": "aws-1a3c5e7g-secret",
    "PREFECT_API_KEY": "pnu-0e2g4i6k-secret",
}


def _everything_written(root: Path) -> str:
    """All text in the workspace's files and every table of its MLflow database."""
    chunks = []
    for rel in files(root):
        path = root / rel
        if rel.endswith(".db"):
            with sqlite3.connect(path) as db:
                for (table,) in db.execute("select name from sqlite_master where type='table'"):
                    chunks.extend(repr(row) for row in db.execute(f"select * from {table}"))
        else:
            chunks.append(path.read_bytes().decode("utf-8", "replace"))
    return "\n".join(chunks)


@pytest.mark.slow  # three real stages with tracking: about 25 s
@pytest.mark.fault(
    category="security",
    fault="credentials and API keys in the environment (MLFLOW_TRACKING_PASSWORD/TOKEN, NAR_API_KEY, "
    "AWS_SECRET_ACCESS_KEY, PREFECT_API_KEY) while generate, pretrain and register run with tracking",
    expected="no secret in stdout/stderr, MLflow params/tags/metrics/registry, artifacts or any written file",
    inputs=len(SECRETS),
)
def test_no_secrets_in_logs_or_mlflow(tmp_path):
    root = tmp_path / "ws"
    root.mkdir()
    write_params(root, TINY)
    out = []
    # a local store: the secrets are in the environment only (MLflow sends them only to an http server).
    # MLFLOW_TRACKING_USERNAME is not among them: MLflow records it as the run's user, by design.
    for argv in (
        ["generate", "--algorithm", "bellman_ford", "--no-progress"],
        ["pretrain", "--run", "tiny", "--no-progress"],
        stage_command("register", TINY),
    ):
        proc = nar(argv, root, timeout=180, **SECRETS)
        assert proc.returncode == 0, proc.stderr[-3000:]
        out += [proc.stdout, proc.stderr]
    with sqlite3.connect(root / "mlflow.db") as db:
        assert db.execute("select count(*) from params").fetchone()[0] > 0  # it did log params
    text = "\n".join(out) + _everything_written(root)
    leaked = [name for name, value in SECRETS.items() if value in text]
    assert not leaked, leaked


@pytest.mark.fault(
    category="security",
    fault="MLFLOW_TRACKING_URI with user:password@ pointing at a server that is down, for pretrain and register",
    expected="one-line error naming the URI without the password; no traceback; password nowhere in output",
    inputs=2,
    lossless=True,
)
def test_credentials_in_the_tracking_uri_never_appear(tmp_path):
    root = tmp_path / "ws"
    root.mkdir()
    write_params(root, TINY)
    assert nar(["generate", "--algorithm", "bellman_ford", "--no-progress"], root).returncode == 0
    write_pretrained(root)
    password = "pw-4e6a8c0e-secret"
    uri_env = {
        "MLFLOW_TRACKING_URI": f"http://alice:{password}@127.0.0.1:9",
        "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0",
        "MLFLOW_HTTP_REQUEST_TIMEOUT": "5",
    }
    before = files(root)
    for argv in (["pretrain", "--run", "tiny", "--no-progress"], stage_command("register", TINY)):
        proc = nar(argv, root, timeout=120, **uri_env)
        message = one_line_error(proc, argv[0])
        assert "127.0.0.1:9" in message, message
        assert password not in proc.stdout + proc.stderr and "alice:" not in proc.stderr, proc.stderr
    new = set(files(root)) - set(before)
    assert not any(not f.startswith("checkpoints/") for f in new), new  # nothing but resumable state
    assert password not in _everything_written(root)


@pytest.mark.slow  # a real temporary Prefect server: about 20 s
@pytest.mark.fault(
    category="security",
    fault="`nar serve` started with no PREFECT_API_URL (it starts Prefect's temporary server and serves deployments)",
    expected="every socket its process tree listens on is bound to loopback",
)
def test_nar_serve_listens_on_loopback_only(tmp_path):
    import time

    import psutil

    from .helpers import NAR

    write_params(tmp_path, TINY)
    proc = subprocess.Popen(
        [NAR, "serve", "--root", "."],
        cwd=tmp_path,
        env=env(PREFECT_HOME=str(tmp_path / ".prefect"), PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS="90"),
        stdout=subprocess.DEVNULL,
        stderr=open(tmp_path / "serve.log", "wb"),  # noqa: SIM115 (the child owns it)
        start_new_session=True,
    )
    listening: set[tuple[str, int]] = set()
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            tree = [psutil.Process(proc.pid), *psutil.Process(proc.pid).children(recursive=True)]
            for p in tree:
                try:
                    conns = p.net_connections(kind="inet")
                except (psutil.NoSuchProcess, psutil.AccessDenied):
                    continue
                listening |= {(c.laddr.ip, c.laddr.port) for c in conns if c.status == psutil.CONN_LISTEN}
            if listening and time.monotonic() > deadline - 100:  # the server is up; give the runner a moment
                break
            time.sleep(0.5)
        assert proc.poll() is None, (tmp_path / "serve.log").read_text()[-3000:]
    finally:
        tree = [psutil.Process(proc.pid), *psutil.Process(proc.pid).children(recursive=True)]
        for p in tree:
            try:
                p.kill()
            except psutil.NoSuchProcess:
                pass
        psutil.wait_procs(tree, timeout=30)
    assert listening, "nothing listened: the temporary server did not start"
    wide = {(ip, port) for ip, port in listening if ip not in ("127.0.0.1", "::1")}
    assert not wide, wide
