"""Uploading a playbook (console and API): validated exactly like a file in the playbook
folder (``playbooks.loader.parse_playbook``, every problem with its line), then written to
the folder as ``<id>.yaml`` (or over the file it came from) and synced into a new immutable
revision. A file that does not validate is refused and nothing is written."""
from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.engine import Engine

from commtest import events as ev
from commtest.clock import Clock
from commtest.db import read_session, session_scope
from commtest.models import Playbook
from commtest.settings import Settings
from playbooks.loader import parse_playbook
from playbooks.schema import PlaybookSpec
from playbooks.store import sync_folder


@dataclass(frozen=True)
class Uploaded:
    playbook_id: str
    content_hash: str
    path: Path
    new_revision: bool


def validate_text(text: str, filename: str = "upload.yaml") -> PlaybookSpec:
    """Raises ``ValidationFailed`` listing every problem (FILE:LINE:COL: field: message)."""
    return parse_playbook(text, filename)


def _target(settings: Settings, engine: Engine, playbook_id: str) -> Path:
    folder = Path(settings.playbook_dir)
    with read_session(engine) as s:
        pb = s.get(Playbook, playbook_id)
    if pb is not None and pb.source_path:
        known = Path(pb.source_path)
        if known.parent.resolve() == folder.resolve():
            return known
    return folder / f"{playbook_id}.yaml"


def store_upload(settings: Settings, engine: Engine, clock: Clock, text: str, filename: str, *, by: str,
                 actor: str) -> Uploaded:
    spec = validate_text(text, filename)
    path = _target(settings, engine, spec.id)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.upload")
    temporary.write_text(text, encoding="utf-8")
    os.replace(temporary, path)  # the folder never holds half a file
    report = sync_folder(engine, Path(settings.playbook_dir), clock)
    digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
    new = (spec.id, digest) in report.new_revisions
    with session_scope(engine) as s:
        ev.record_event(s, at=clock.now(), actor=actor, kind=ev.PLAYBOOK_UPLOADED, playbook_id=spec.id,
                        content_hash=digest, by=by, new_revision=new)
    return Uploaded(spec.id, digest, path, new)
