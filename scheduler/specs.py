"""The playbook a run follows: the exact stored revision, parsed once and cached."""
from __future__ import annotations

import threading

import sqlalchemy as sa
from ruamel.yaml import YAML
from sqlmodel import Session

from commtest.errors import NotFoundError
from commtest.models import PlaybookRevision
from playbooks.schema import PlaybookSpec

_cache: dict[str, PlaybookSpec] = {}
_by_revision: dict[tuple[str, int], PlaybookSpec] = {}  # (database URL, revision id): revisions never change
_lock = threading.Lock()


def parse_revision_text(content_hash: str, text: str) -> PlaybookSpec:
    with _lock:
        cached = _cache.get(content_hash)
    if cached is not None:
        return cached
    data = YAML(typ="safe").load(text)
    spec = PlaybookSpec.model_validate(data)
    with _lock:
        _cache[content_hash] = spec
    return spec


def spec_for_revision(session: Session, revision_id: int) -> PlaybookSpec:
    bind = session.get_bind()
    key = (str(bind.engine.url if hasattr(bind, "engine") else bind), revision_id)
    with _lock:
        cached = _by_revision.get(key)
    if cached is not None:
        return cached
    rev = session.get(PlaybookRevision, revision_id)
    if rev is None:
        raise NotFoundError(f"playbook revision {revision_id} not found")
    spec = parse_revision_text(rev.content_hash, rev.source_text)
    with _lock:
        _by_revision[key] = spec
    return spec


_RT = PlaybookRevision.__table__  # type: ignore[attr-defined]


def spec_for_revision_id(conn: sa.Connection, revision_id: int) -> PlaybookSpec:
    """``spec_for_revision`` on a Core connection (the batched hot paths)."""
    key = (str(conn.engine.url), revision_id)
    with _lock:
        cached = _by_revision.get(key)
    if cached is not None:
        return cached
    row = conn.execute(sa.select(_RT.c.content_hash, _RT.c.source_text).where(_RT.c.id == revision_id)).first()
    if row is None:
        raise NotFoundError(f"playbook revision {revision_id} not found")
    spec = parse_revision_text(row.content_hash, row.source_text)
    with _lock:
        _by_revision[key] = spec
    return spec
