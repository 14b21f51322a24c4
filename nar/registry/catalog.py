"""Reading the registry and moving aliases by hand: ``nar registry list | show | promote``."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from nar.registry.client import _error_code, registry_client
from nar.registry.format import RegistryError
from nar.registry.load import _resolve_version
from nar.registry.versions import READY, REGISTERED_MODEL, TAG_SHA, TAG_STATUS, check_model_name
from nar.tracking import RetryPolicy


@dataclass(frozen=True)
class VersionInfo:
    name: str
    version: str
    aliases: tuple[str, ...]
    status: str
    tags: dict[str, str]
    description: str
    source: str
    created: float  # unix seconds

    @property
    def sha256(self) -> str:
        return self.tags.get(TAG_SHA, "")


def _info(mv: Any, aliases: Mapping[str, Any]) -> VersionInfo:
    tags = dict(mv.tags or {})
    return VersionInfo(
        name=mv.name,
        version=str(mv.version),
        aliases=tuple(sorted(a for a, v in aliases.items() if str(v) == str(mv.version))),
        status=tags.get(TAG_STATUS, "foreign"),
        tags=tags,
        description=mv.description or "",
        source=mv.source or "",
        created=(mv.creation_timestamp or 0) / 1000.0,
    )


def list_versions(
    name: str = REGISTERED_MODEL, *, tracking: str | None = None, retry: RetryPolicy | None = None
) -> list[VersionInfo]:
    """Every version of ``name``, newest first."""
    from mlflow.exceptions import MlflowException

    check_model_name(name)
    with registry_client(tracking, retry) as ml:
        try:
            aliases = ml.get_registered_model(name).aliases or {}
        except MlflowException as exc:
            if _error_code(exc) == "RESOURCE_DOES_NOT_EXIST":
                return []
            raise
        versions = ml.search_model_versions(f"name='{name}'")
        return sorted((_info(v, aliases) for v in versions), key=lambda i: -int(i.version))


def show_version(
    ref: str = "@champion",
    name: str = REGISTERED_MODEL,
    *,
    tracking: str | None = None,
    retry: RetryPolicy | None = None,
) -> VersionInfo:
    """One version: ``ref`` is a version number, ``@alias`` or a ``models:/`` URI."""
    if not ref.startswith("models:/"):
        check_model_name(name)
    uri = ref if ref.startswith("models:/") else f"models:/{name}{ref if ref.startswith('@') else '/' + ref}"
    with registry_client(tracking, retry) as ml:
        mv = _resolve_version(ml, uri)
        return _info(mv, ml.get_registered_model(mv.name).aliases or {})


def promote(
    version: str,
    alias: str = "champion",
    name: str = REGISTERED_MODEL,
    *,
    tracking: str | None = None,
    retry: RetryPolicy | None = None,
) -> str | None:
    """Point ``alias`` at ``version`` by hand (no gate). Returns the version it pointed at before."""
    check_model_name(name)
    with registry_client(tracking, retry) as ml:
        mv = _resolve_version(ml, f"models:/{name}/{version}")
        if (mv.tags or {}).get(TAG_STATUS) != READY:
            raise RegistryError(f"{name} version {version} is not a complete nar registration; refusing to promote it")
        before = (ml.get_registered_model(name).aliases or {}).get(alias)
        ml.set_registered_model_alias(name, alias, str(version))
        return None if before is None else str(before)
