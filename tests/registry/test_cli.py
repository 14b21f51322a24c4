"""``nar register`` and ``nar registry list | show | promote | verify`` over a SQLite store."""

from __future__ import annotations

import argparse
import json
import re

import pytest

from nar.registry import RegistryError, show_version
from nar.registry.cli import add_register_parser, add_registry_parser, table
from nar.tracking import params_hash


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="nar")
    parser.add_argument("--params", default="params.yaml")
    sub = parser.add_subparsers(dest="command", required=True)
    add_register_parser(sub)
    add_registry_parser(sub)
    return parser.parse_args(argv)


def run(argv: list[str], capsys) -> str:
    args = parse(argv)
    args.func(args)
    return capsys.readouterr().out


def test_parsers():
    args = parse(["register", "--pretrained", "models/pretrain/x", "--gate-margin", "0.5"])
    assert args.pretrained == "models/pretrain/x" and args.gate_margin == 0.5 and args.name == "nar-processor"
    assert parse(["registry", "show"]).ref == "@champion"
    args = parse(["registry", "promote", "3", "--alias", "staging", "--name", "other"])
    assert (args.version, args.alias, args.name) == ("3", "staging", "other")
    with pytest.raises(SystemExit):
        parse(["registry"])  # a subcommand is required
    with pytest.raises(SystemExit):
        parse(["register"])  # --pretrained is required


def test_table():
    assert table(["A", "BB"], [[1, "x"], [22, "yyy"]]).splitlines() == ["A   BB", "--  ---", "1   x", "22  yyy"]


def test_register_list_show_promote_verify(ws, capsys):
    (ws.root / "params.yaml").write_text("generate: {seed: 1}\npretrain: {steps: 10}\nother: {x: 1}\n")
    ws.pretrain("a", ood=80.0)
    ws.pretrain("b", seed=1, ood=70.0, kind="triplet_gmpnn")
    out = run(["register", "--pretrained", "models/pretrain/a"], capsys)
    assert "registered: models:/nar-processor/1" in out and "no champion yet" in out
    out = run(["register", "--pretrained", "models/pretrain/b", "--metrics", "metrics/pretrain/b.json"], capsys)
    assert "registered: models:/nar-processor/2  aliases: candidate" in out and "kept champion version 1" in out
    out = run(["register", "--pretrained", "models/pretrain/b"], capsys)
    assert out.startswith("unchanged: models:/nar-processor/2")
    expected_hash = params_hash({"generate": {"seed": 1}, "pretrain": {"steps": 10}})  # the sections it depends on
    assert show_version("1").tags["params_hash"] == expected_hash
    assert json.loads((ws.root / "models" / "registered.json").read_text())["version"] == "2"

    lines = run(["registry", "list"], capsys).splitlines()
    assert lines[0].split()[:4] == ["VERSION", "ALIASES", "STATUS", "KIND"]
    assert lines[2].split()[:6] == ["2", "candidate", "ready", "triplet_gmpnn", "16", "bfs,dijkstra"]
    assert lines[3].split()[:7] == ["1", "champion", "ready", "mpnn", "16", "bfs,dijkstra", "80.00"]

    out = run(["registry", "show"], capsys)
    assert re.search(r"^version +1$", out, re.M) and "# nar-processor version 1" in out and "| bfs | 81.00 |" in out
    assert "tag weights_sha256" in out
    assert re.search(r"^version +2$", run(["registry", "show", "@candidate"], capsys), re.M)

    assert run(["registry", "promote", "2"], capsys).strip() == "nar-processor@champion: 1 -> 2"
    assert re.search(r"^aliases +candidate, champion$", run(["registry", "show", "2"], capsys), re.M)

    out = run(["registry", "verify", "@champion"], capsys)
    assert out.startswith("OK models:/nar-processor@champion (version 2): triplet_gmpnn, hidden 16,")
    assert "frozen" in out
    assert run(["registry", "verify", "models:/nar-processor/1"], capsys).startswith("OK models:/nar-processor/1")

    with pytest.raises(RegistryError, match="has no version 7"):
        run(["registry", "promote", "7"], capsys)
    assert run(["registry", "list", "--name", "empty"], capsys).strip() == "no versions of empty"


@pytest.mark.fault(
    category="registry", fault="`nar registry verify` on altered weights", expected="exit 2 naming the sha256 mismatch"
)
def test_verify_reports_tampering(ws, capsys):
    run(["register", "--pretrained", str(ws.pretrain("a"))], capsys)
    (weights,) = ws.root.parent.glob("mlruns/models/m-*/artifacts/data/processor/processor.safetensors")
    weights.write_bytes(weights.read_bytes()[:-4] + b"\0\0\0\0")
    with pytest.raises(RegistryError, match="modified or replaced"):
        run(["registry", "verify", "1"], capsys)
