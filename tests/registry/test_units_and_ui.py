"""What a reader of the registry sees: scores in % everywhere (card, tags, `nar registry show`, old versions
too), the logged model linked to its version with a signature, experiment descriptions, the light MLflow UI.
A real MLflow with a SQLite store in a temp dir."""

from __future__ import annotations

import json
import re
import warnings
from pathlib import Path

import mlflow
import pytest
import torch
from mlflow import MlflowClient

from nar import registry
from nar.registry.cli import add_registry_parser
from nar.tracking import NOTE_TAG, configure_mlflow, mlflow_ui_command

ROOT = Path(__file__).resolve().parents[2]
NAME = registry.REGISTERED_MODEL
FRACTION = re.compile(r"(?<![\d.])0\.\d+")  # 0.91 and the like: a score as a fraction


def show(ref: str, capsys) -> str:
    import argparse

    parser = argparse.ArgumentParser(prog="nar")
    add_registry_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["registry", "show", ref])
    args.func(args)
    return capsys.readouterr().out


def score_tags(tags: dict[str, str]) -> dict[str, float]:
    return {k: float(v) for k, v in tags.items() if k == "ood_score" or k.startswith(("ood_score.", "scale"))}


@pytest.mark.parametrize("per_algorithm", [True, False], ids=["metrics-now", "metrics-before-per-algorithm-scores"])
def test_every_score_on_the_card_and_in_the_tags_is_a_percentage(ws, capsys, per_algorithm):
    result = registry.register(ws.pretrain("a", ood=90.0, scale=93.0, per_algorithm=per_algorithm))
    info = registry.show_version(result.version)
    assert info.tags["score_unit"] == "percent"
    assert score_tags(info.tags) == {
        "ood_score": 90.0,
        "ood_score.bfs": 91.0,
        "ood_score.dijkstra": 89.0,
        "scale_score": 93.0,
        "scale.bellman_ford.256.grid": 93.0,
        "scale.bellman_ford.256.delaunay": 93.0,
    }
    card = info.description
    assert "| bfs | 91.00 | 99.89 | 99.73 |" in card and "| dijkstra | 89.00 | 91.50 | 96.05 |" in card
    assert "**90.00 %**" in card
    scores_section = card.split("## Trained on")[0]
    assert not FRACTION.search(scores_section), scores_section
    # the registration run's metrics: the same numbers
    run = MlflowClient().get_run(MlflowClient().get_model_version(NAME, result.version).run_id)
    assert run.data.metrics == {"ood_score": 90.0, "ood_score.bfs": 91.0, "ood_score.dijkstra": 89.0}
    out = show(result.version, capsys)
    assert "| bfs | 91.00 |" in out and not re.search(r"tag ood_score\S*\s+0\.", out), out


def test_a_version_registered_with_fractions_reads_in_percent(ws, capsys):
    """Versions registered before scores were all in % (ood_score.<algorithm> tags and card rows as
    fractions) still show, in %, and still load."""
    result = registry.register(ws.pretrain("a", ood=90.0))
    client = MlflowClient()
    # make it look as a version registered then did
    client.delete_model_version_tag(NAME, result.version, "score_unit")
    client.set_model_version_tag(NAME, result.version, "ood_score.bfs", repr(0.91))
    client.set_model_version_tag(NAME, result.version, "ood_score.dijkstra", repr(0.89))
    old_card = registry.show_version(result.version).description
    for algo, old, fraction in (("bfs", "91.00", "0.91"), ("dijkstra", "89.00", "0.89")):
        old_card = old_card.replace(f"| {algo} | {old} |", f"| {algo} | {fraction} |")
    client.update_model_version(NAME, result.version, description=old_card)

    out = show(result.version, capsys)
    assert "| bfs | 91.00 | 99.89 | 99.73 |" in out and "| dijkstra | 89.00 | 91.50 | 96.05 |" in out
    assert "0.91 |" not in out
    assert re.search(r"tag ood_score\.bfs +91\.0 \(registered as the fraction 0\.91\)", out), out
    assert registry.version_ood_scores(registry.show_version(result.version).tags) == {"bfs": 91.0, "dijkstra": 89.0}
    assert registry.load_registered(f"models:/{NAME}/{result.version}").version == result.version


def test_the_logged_model_is_linked_to_its_version_and_has_a_signature(ws):
    result = registry.register(ws.pretrain("a", kind="triplet_gmpnn"))
    client = MlflowClient()
    mv = client.get_model_version(NAME, result.version)
    assert mv.source.startswith("models:/m-")  # the version points at the logged model ...
    model = client.get_logged_model(mv.source.removeprefix("models:/"))
    # ... and the logged model at the version, as mlflow.register_model records it (the UI reads this)
    assert json.loads(model.tags["mlflow.modelVersions"]) == [{"name": NAME, "version": 1}]

    signature = mlflow.models.get_model_info(f"models:/{model.model_id}").signature
    inputs = {spec.name: (str(spec.type), spec.shape) for spec in signature.inputs.inputs}
    assert inputs == {
        "node_fts": ("float32", (-1, -1, 16)),
        "edge_fts": ("float32", (-1, -1, -1, 16)),
        "graph_fts": ("float32", (-1, 16)),
        "adj": ("bool", (-1, -1, -1)),
        "hidden": ("float32", (-1, -1, 16)),
        "node_mask": ("bool", (-1, -1)),
    }
    outputs = {spec.name: spec.shape for spec in signature.outputs.inputs}
    assert outputs["hidden"] == (-1, -1, 16) and set(outputs) <= {"hidden", "edges"}

    # the signature is enforced: a call that leaves out the previous latents is refused, not run on zeros
    pyfunc = mlflow.pyfunc.load_model(f"models:/{NAME}/{result.version}")
    x = {
        "node_fts": torch.randn(2, 5, 16).numpy(),
        "edge_fts": torch.randn(2, 5, 5, 16).numpy(),
        "graph_fts": torch.zeros(2, 16).numpy(),
        "adj": torch.ones(2, 5, 5, dtype=torch.bool).numpy(),
        "hidden": torch.randn(2, 5, 16).numpy(),
        "node_mask": torch.ones(2, 5, dtype=torch.bool).numpy(),
    }
    assert pyfunc.predict(x)["hidden"].shape == (2, 5, 16)
    with pytest.raises(Exception, match="hidden"):
        pyfunc.predict({k: v for k, v in x.items() if k != "hidden"})

    # registering the same weights again adds no second link
    assert not registry.register(ws.pretrain("again", kind="triplet_gmpnn")).created
    model = client.get_logged_model(model.model_id)
    assert json.loads(model.tags["mlflow.modelVersions"]) == [{"name": NAME, "version": 1}]


def test_a_version_registered_before_the_link_gets_it_when_registered_again(ws):
    result = registry.register(ws.pretrain("a"))
    client = MlflowClient()
    model_id = client.get_model_version(NAME, result.version).source.removeprefix("models:/")
    client.delete_logged_model_tag(model_id, "mlflow.modelVersions")
    assert not registry.register(ws.pretrain("a")).created  # identical weights: nothing new, link restored
    assert json.loads(client.get_logged_model(model_id).tags["mlflow.modelVersions"]) == [{"name": NAME, "version": 1}]


def test_a_rolled_back_version_leaves_no_link(ws, monkeypatch):
    original = MlflowClient.set_model_version_tag

    def failing(self, name, version, key, value):
        if key == "nar_status":
            raise ConnectionError("connection refused (injected)")
        return original(self, name, version, key, value)

    with monkeypatch.context() as patch:  # undoes only this patch, not the fixture's MLFLOW_TRACKING_URI
        patch.setattr(MlflowClient, "set_model_version_tag", failing)
        with pytest.raises(registry.RegistryUnavailable):
            registry.register(ws.pretrain("a"))
    client = MlflowClient()
    models = client.search_logged_models(experiment_ids=[client.get_experiment_by_name("nar-register").experiment_id])
    assert models and all(json.loads(m.tags.get("mlflow.modelVersions", "[]")) == [] for m in models)


def test_experiments_have_descriptions_and_an_edited_one_is_kept(ws):
    registry.register(ws.pretrain("a"))
    configure_mlflow(ws.root)  # nar-pretrain, as `nar pretrain` sets it up
    client = MlflowClient()
    for name in ("nar-register", "nar-pretrain"):
        note = client.get_experiment_by_name(name).tags.get(NOTE_TAG, "")
        assert note.startswith(("Registrations", "Pretraining runs")) and len(note) > 80, (name, note)
    pretrain = client.get_experiment_by_name("nar-pretrain")
    client.set_experiment_tag(pretrain.experiment_id, NOTE_TAG, "my own notes")
    configure_mlflow(ws.root)
    assert client.get_experiment_by_name("nar-pretrain").tags[NOTE_TAG] == "my own notes"


def test_our_mlflow_calls_raise_no_deprecation_or_future_warning(ws):
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)
        warnings.simplefilter("error", FutureWarning)
        result = registry.register(ws.pretrain("a"))
        registry.load_registered(f"models:/{NAME}@champion")
        registry.list_versions()
        configure_mlflow(ws.root)
        mlflow.pyfunc.load_model(f"models:/{NAME}/{result.version}")


def test_the_mlflow_ui_commands_are_light():
    """One uvicorn worker and no job runner (MLflow's default: 4 workers, a huey runner and its consumers)."""
    command = mlflow_ui_command(Path("/ws"))
    assert command.startswith("MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false mlflow ui ")
    assert "--workers 1" in command and "--backend-store-uri sqlite:////ws/mlflow.db" in command
    readme = (ROOT / "README.md").read_text()
    commands = [line for line in readme.splitlines() if re.search(r"\bmlflow (ui|server)\b", line)]
    assert any(re.search(r"mlflow ui +--", line) for line in commands)
    for line in commands:
        if re.search(r"mlflow ui +--", line):  # a line that starts one, not prose about it
            assert "MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false" in line and "--workers 1" in line, line
