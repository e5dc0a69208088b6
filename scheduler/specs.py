"""The playbook a run follows: the exact stored revision, parsed once and cached."""
from __future__ import annotations

import threading

from ruamel.yaml import YAML
from sqlmodel import Session

from commtest.errors import NotFoundError
from commtest.models import PlaybookRevision
from playbooks.schema import PlaybookSpec

_cache: dict[str, PlaybookSpec] = {}
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
    rev = session.get(PlaybookRevision, revision_id)
    if rev is None:
        raise NotFoundError(f"playbook revision {revision_id} not found")
    return parse_revision_text(rev.content_hash, rev.source_text)
