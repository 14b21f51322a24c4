"""The lock file that serialises registrations against one tracking store.

Beside the database for a SQLite store (so in the workspace by default), in the temp directory for a
server URI (same machine only). Across machines identical weights still end in one version (see
:mod:`nar.registry.registration`); alias moves there are last-writer-wins.
"""

from __future__ import annotations

import contextlib
import hashlib
import tempfile
from collections.abc import Iterator
from pathlib import Path

from nar.registry.format import RegistryError
from nar.tracking import safe_uri, sqlite_path


def lock_path(uri: str) -> Path:
    """The lock file that serialises registrations against ``uri``.

    SQLite: ``<database>.lock`` beside the database (the workspace by default). A server:
    one per URI in the temp directory (serialises the processes of one machine).
    """
    db = sqlite_path(uri)
    if db is not None:
        return db.with_name(db.name + ".lock")
    digest = hashlib.sha256(safe_uri(uri).encode()).hexdigest()[:16]
    return Path(tempfile.gettempdir()) / f"nar-registry-{digest}.lock"


@contextlib.contextmanager
def registry_lock(uri: str, timeout: float) -> Iterator[None]:
    from filelock import FileLock, Timeout

    path = lock_path(uri)
    path.parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(path))
    try:
        lock.acquire(timeout=timeout)
    except Timeout:
        raise RegistryError(
            f"another registration holds {path} for more than {timeout:.0f}s; wait for it or remove the file "
            "if no `nar register` is running"
        ) from None
    try:
        yield
    finally:
        lock.release()
