"""``nar register`` and ``nar registry list | show | promote | verify``: thin over :mod:`nar.registry`.

``nar.cli.build_parser`` hooks them in with ``add_register_parser(sub)`` and ``add_registry_parser(sub)``.
Heavy imports (torch, mlflow) happen inside the handlers.
"""

from __future__ import annotations

import argparse
import math
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

REGISTERED_MODEL = "nar-processor"  # nar.registry.REGISTERED_MODEL, without importing torch here
PARAMS_SECTIONS = ("generate", "pretrain")  # what a pretrained processor depends on


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A plain fixed-width table."""
    cells = [[str(h) for h in headers], *[[str(c) for c in row] for row in rows]]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _params_for_hash(path: str | Path) -> dict[str, Any] | None:
    """The params.yaml sections a processor depends on (hashed into its lineage), None without the file."""
    from nar.config import read_params_file

    path = Path(path)
    if not path.is_file():
        return None
    data = read_params_file(path)
    return {k: data[k] for k in PARAMS_SECTIONS if k in data} if isinstance(data, dict) else {}


# MLflow keeps version numbers as SQL integers (64-bit in SQLite and PostgreSQL): a larger one used to end in an
# OverflowError traceback deep inside its SQL store.
MAX_VERSION = 2**63 - 1
VERSION_RULE = f"a version number from 1 to {MAX_VERSION} (see `nar registry list`)"


def check_version(ref: str, what: str, *, number_only: bool = False) -> None:
    """Refuse, as one line, a version number (``3``, or the last part of ``models:/<name>/3``) that MLflow cannot
    hold: not ASCII digits, 0, signed, or beyond a 64-bit integer. Aliases, other URIs and paths pass unchanged,
    unless ``number_only`` (where only a version number is allowed)."""
    version = ref
    if number_only:
        pass
    elif ref.startswith("models:/"):
        rest = ref.removeprefix("models:/")
        if "@" in rest or "/" not in rest:
            return
        version = rest.rsplit("/", 1)[1]
    elif not ref.lstrip("+-").isdigit():
        return
    if not (version.isascii() and version.isdigit() and 1 <= int(version) <= MAX_VERSION):
        from nar.config import shown
        from nar.errors import UserError

        raise UserError(f"{what} {shown(ref)}: allowed: {VERSION_RULE}")


def _uri(ref: str, name: str) -> str:
    """``3`` -> models:/name/3, ``@champion`` -> models:/name@champion; URIs and paths unchanged."""
    check_version(ref, "version")
    if ref.isdigit():
        return f"models:/{name}/{ref}"
    if ref.startswith("@"):
        return f"models:/{name}{ref}"
    return ref


def _when(seconds: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.gmtime(seconds)) if seconds else "-"


# --------------------------------------------------------------------------- nar register


def _check_register_params(path: str | Path) -> None:
    """Validate params.yaml's ``register`` section before any work, as every stage does with its own.

    dvc.yaml passes the section's values as arguments, so without this an unknown key, a wrong type or a
    run that ``pretrain.runs`` does not have would reach the registry (or argparse) unnamed.
    """
    from nar.config import ConfigError, RegisterParams, build, read_params_file

    path = Path(path)
    if not path.is_file():
        return  # `nar register` by hand, outside a workspace: the arguments are all there is
    data = read_params_file(path)
    if not isinstance(data, dict) or "register" not in data:
        return  # no section to check (dvc.yaml's register stage always has one: it templates from it)
    params = build(RegisterParams, data["register"], "register")
    runs = data["pretrain"].get("runs") if isinstance(data.get("pretrain"), dict) else None
    if isinstance(runs, dict) and runs and params.run not in runs:
        raise ConfigError("register.run", params.run, f"a run of pretrain.runs: {sorted(runs)}")


def _float_or_text(text: str) -> float | str:
    """argparse type that never fails: a bad value is reported after params.yaml is checked (it names the key)."""
    try:
        return float(text)
    except ValueError:
        return text


def _gate_margin(value: float | str) -> float:
    from nar.errors import UserError

    if isinstance(value, str) or not math.isfinite(value):
        raise UserError(f"--gate-margin {value!r} is not a finite number")
    return value


def cmd_register(args: argparse.Namespace) -> None:
    from nar.errors import UserError

    _check_register_params(getattr(args, "params", None) or "params.yaml")
    margin = _gate_margin(args.gate_margin)
    from nar.config import MODEL_NAME_RULE, is_model_name

    if not is_model_name(args.name):  # before MLflow: a quote once left an empty model `registry list` never shows
        shown = args.name[:80] + ("..." if len(args.name) > 80 else "")
        raise UserError(f"--name {shown!r}: a registered model name is {MODEL_NAME_RULE}")
    if args.out:
        from nar.limits import inside_workspace

        inside_workspace(args.out, "--out")  # before registering: the record must not land outside
    from nar.registry import Gate, register

    result = register(
        args.pretrained,
        args.metrics,
        name=args.name,
        gate=Gate(metric=args.gate_metric, margin=margin, higher_is_better=not args.lower_is_better),
        out=args.out,
        params=_params_for_hash(getattr(args, "params", "params.yaml")),
    )
    verb = "registered" if result.created else "unchanged"
    print(f"{verb}: {result.uri}  aliases: {', '.join(result.aliases) or '-'}  sha256: {result.sha256[:16]}")
    print(f"champion: {result.reason}")
    if args.out:
        print(f"wrote {args.out}")


def add_register_parser(subparsers: Any) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "register",
        help="freeze a pretrained processor and register it in the MLflow model registry",
        description="Freeze the processor in --pretrained, register it as a version of --name (alias "
        "candidate; champion if it passes the gate) and write models/registered.json. Registering "
        "identical weights again changes nothing.",
    )
    p.add_argument("--pretrained", required=True, help="pretrain output directory, e.g. models/pretrain/<name>")
    p.add_argument("--metrics", help="its metrics JSON (default: metrics/pretrain/<name>.json)")
    p.add_argument("--name", default=REGISTERED_MODEL, help=f"registered model name (default: {REGISTERED_MODEL})")
    p.add_argument(
        "--gate-metric", default="ood_score", help="metric (dotted path in the metrics JSON) the gate compares"
    )
    p.add_argument(
        "--gate-margin", type=_float_or_text, default=0.0, help="champion moves if new >= champion + margin (default 0)"
    )
    p.add_argument("--lower-is-better", action="store_true", help="the gate metric is a loss, not a score")
    p.add_argument("--out", default="models/registered.json", help="where to write the registration record")
    p.set_defaults(func=cmd_register)
    return p


# --------------------------------------------------------------------------- nar registry


def cmd_list(args: argparse.Namespace) -> None:
    from nar.registry import list_versions

    versions = list_versions(args.name)
    if not versions:
        print(f"no versions of {args.name}")
        return
    rows = [
        (
            v.version,
            ",".join(v.aliases) or "-",
            v.status,
            v.tags.get("processor_kind", "-"),
            v.tags.get("hidden", "-"),
            v.tags.get("algorithms", "-"),
            _score(v.tags.get("ood_score")),
            v.sha256[:12] or "-",
            _when(v.created),
        )
        for v in versions
    ]
    headers = ("VERSION", "ALIASES", "STATUS", "KIND", "HIDDEN", "ALGORITHMS", "OOD %", "SHA256", "CREATED (UTC)")
    print(table(headers, rows))


def _score(raw: str | None) -> str:
    try:
        return f"{float(raw):.2f}" if raw else "-"
    except ValueError:
        return raw or "-"


def cmd_show(args: argparse.Namespace) -> None:
    from nar.registry import PERCENT, TAG_UNIT, card_in_percent, show_version, version_ood_scores

    check_version(args.ref, "version")
    v = show_version(args.ref, args.name)
    tags = dict(v.tags)
    if tags.get(TAG_UNIT) != PERCENT:  # registered before every score was in %: show them in % all the same
        for algo, percent in version_ood_scores(v.tags).items():
            key = f"ood_score.{algo}"
            if float(v.tags[key]) != percent:
                tags[key] = f"{percent!r} (registered as the fraction {v.tags[key]})"
    rows = [
        ("version", v.version),
        ("aliases", ", ".join(v.aliases) or "-"),
        ("status", v.status),
        ("created (UTC)", _when(v.created)),
        ("source", v.source),
        *sorted((f"tag {k}", val) for k, val in tags.items()),
    ]
    print(table(("FIELD", "VALUE"), rows))
    if v.description:
        print()
        print(card_in_percent(v.description, v.tags))


def cmd_promote(args: argparse.Namespace) -> None:
    from nar.registry import promote

    check_version(args.version, "version", number_only=True)
    before = promote(args.version, args.alias, args.name)
    print(f"{args.name}@{args.alias}: {before or '-'} -> {args.version}")


def cmd_verify(args: argparse.Namespace) -> None:
    from nar.registry import TAG_CONFIG_SHA, config_sha256, is_frozen, load_registered

    loaded = load_registered(_uri(args.uri, args.name))
    params = sum(p.numel() for p in loaded.processor.parameters())
    cfg = loaded.meta.config
    where = f" (version {loaded.version})" if loaded.version else ""
    # older registrations recorded no config hash: say that their config was not checked
    recorded = loaded.tags.get(TAG_CONFIG_SHA) or loaded.meta.config_sha256
    config = f"config sha256 {config_sha256(loaded.meta)}" if recorded else "config unverified (no hash recorded)"
    print(
        f"OK {loaded.uri}{where}: {cfg.kind}, hidden {cfg.hidden}, {params:,} parameters, "
        f"sha256 {loaded.sha256}, {config}, {'frozen' if is_frozen(loaded.processor) else 'trainable'}"
    )


def add_registry_parser(subparsers: Any) -> argparse.ArgumentParser:
    p = subparsers.add_parser("registry", help="list, inspect, promote and verify registered processors")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--name", default=REGISTERED_MODEL, help=f"registered model (default: {REGISTERED_MODEL})")
    sub = p.add_subparsers(dest="registry_command", required=True)

    ls = sub.add_parser("list", parents=[common], help="every version, newest first")
    ls.set_defaults(func=cmd_list)

    show = sub.add_parser("show", parents=[common], help="one version's tags and model card")
    show.add_argument("ref", nargs="?", default="@champion", help="VERSION or @alias (default: @champion)")
    show.set_defaults(func=cmd_show)

    pr = sub.add_parser("promote", parents=[common], help="point an alias at a version by hand (no gate)")
    pr.add_argument("version", help="version number")
    pr.add_argument("--alias", default="champion", help="alias to move (default: champion)")
    pr.set_defaults(func=cmd_promote)

    ver = sub.add_parser("verify", parents=[common], help="download and check a processor (sha256, config, shapes)")
    ver.add_argument("uri", help="models:/<name>/<version>, models:/<name>@<alias>, VERSION, @alias or a directory")
    ver.set_defaults(func=cmd_verify)
    return p
