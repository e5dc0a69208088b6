"""Playbook files ↔ database: immutable revisions keyed by content hash.

A run points at the exact revision it ran, so a revision is never changed or deleted;
a file edited on disk simply becomes a new revision. A broken file never replaces the
last good revision: its error is recorded on the playbook for the coordinators to see.
"""
from __future__ import annotations

import hashlib
import re
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from time import monotonic

from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from commtest.clock import Clock
from commtest.db import session_scope
from commtest.errors import NotFoundError, Problem, ValidationFailed
from commtest.limits import DEFAULT_MAX_PLAYBOOK_BYTES, read_limited
from commtest.models import Playbook, PlaybookRevision, Schedule, TestRun
from playbooks.loader import depends_on_time, parse_playbook, peek_id
from playbooks.schema import PlaybookSpec

__all__ = [
    "FolderLoad",
    "LoadedPlaybook",
    "SyncReport",
    "current_revision",
    "find_revision",
    "get_revision",
    "load_file",
    "load_folder",
    "spec_of",
    "sync_folder",
]

PLAYBOOK_SUFFIXES = (".yaml", ".yml")
_ID = re.compile(r"^[a-z0-9][a-z0-9._-]{0,99}$")
_CACHE_SIZE = 64
# (path, content hash) -> what validating those bytes gave; bytes never change meaning.
_verdicts: OrderedDict[tuple[str, str], LoadedPlaybook | ValidationFailed] = OrderedDict()
_verdicts_lock = threading.Lock()


@dataclass(frozen=True)
class LoadedPlaybook:
    path: Path
    text: str
    content_hash: str  # sha256 hex of the file's bytes
    spec: PlaybookSpec


@dataclass(frozen=True)
class FolderLoad:
    valid: list[LoadedPlaybook]
    invalid: list[tuple[Path, ValidationFailed]]
    deferred: list[Path] = field(default_factory=list)  # not read within the caller's deadline


@dataclass(frozen=True)
class SyncReport:
    valid: list[LoadedPlaybook]
    invalid: list[tuple[Path, ValidationFailed]]
    new_revisions: list[tuple[str, str]]  # (playbook id, content hash) inserted by this sync
    errors_recorded: list[str]  # playbook ids whose last_error this sync set
    deferred: list[Path] = field(default_factory=list)  # not read within the deadline: left as they were


def load_file(path: Path, *, max_bytes: int = DEFAULT_MAX_PLAYBOOK_BYTES, deadline: float | None = None) -> LoadedPlaybook:
    """Read and validate one playbook file; raises ``ValidationFailed``.

    A file over ``max_bytes`` (the setting ``max_playbook_bytes``) is refused before it is
    parsed. The verdict on a file is remembered by its content hash, so the daemon's sync
    every minute does not validate an unchanged file again (a hostile one included); a
    refusal by a time budget is not remembered, as it depends on how busy the machine was.
    ``deadline`` (``time.monotonic()``) cuts the template checks short (see ``load_folder``)."""
    try:
        data = read_limited(path, limit=max_bytes, what="a playbook file", setting="max_playbook_bytes")
    except OSError as exc:
        raise ValidationFailed([Problem(str(path), None, "", f"cannot read the file: {exc.strerror or exc}")]) from exc
    content_hash = hashlib.sha256(data).hexdigest()
    key = (str(path), content_hash)
    with _verdicts_lock:
        verdict = _verdicts.get(key)
    if verdict is None:
        verdict = _validate(path, data, content_hash, deadline)
        if not (isinstance(verdict, ValidationFailed) and depends_on_time(verdict)):
            with _verdicts_lock:
                _verdicts[key] = verdict
                while len(_verdicts) > _CACHE_SIZE:
                    _verdicts.popitem(last=False)
    if isinstance(verdict, ValidationFailed):
        raise ValidationFailed(verdict.problems, verdict.summary)  # a fresh error: tracebacks must not pile up
    return verdict


def _validate(path: Path, data: bytes, content_hash: str, deadline: float | None) -> LoadedPlaybook | ValidationFailed:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return ValidationFailed([Problem(str(path), None, "", "the file is not UTF-8 text; save it as UTF-8")])
    try:
        spec = parse_playbook(text, str(path), deadline=deadline)
    except ValidationFailed as exc:
        return exc
    return LoadedPlaybook(path=path, text=text, content_hash=content_hash, spec=spec)


def playbook_files(folder: Path) -> list[Path]:
    if not folder.is_dir():
        raise NotFoundError(f"playbook folder {folder} does not exist; create it or set COMMTEST_PLAYBOOK_DIR")
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in PLAYBOOK_SUFFIXES)


def load_folder(folder: Path, *, max_bytes: int = DEFAULT_MAX_PLAYBOOK_BYTES,
                deadline: float | None = None) -> FolderLoad:
    """Validate every ``*.yaml``/``*.yml`` file of ``folder`` (in name order); a repeated id is a problem.

    With a ``deadline`` (``time.monotonic()``), the files not read by then (and one whose
    template checks it cut short) are ``deferred``, neither valid nor invalid: each file is
    bounded on its own, but a folder of slow ones is not, and the daemon must not wait for
    it before it leads."""
    valid: list[LoadedPlaybook] = []
    invalid: list[tuple[Path, ValidationFailed]] = []
    deferred: list[Path] = []
    by_id: dict[str, LoadedPlaybook] = {}
    for path in playbook_files(folder):
        if deadline is not None and monotonic() >= deadline:
            deferred.append(path)
            continue
        try:
            loaded = load_file(path, max_bytes=max_bytes, deadline=deadline)
        except ValidationFailed as exc:
            if deadline is not None and monotonic() >= deadline and depends_on_time(exc):
                deferred.append(path)
            else:
                invalid.append((path, exc))
            continue
        first = by_id.get(loaded.spec.id)
        if first is not None:
            where = peek_id(loaded.text)
            line, col = (where[1], where[2]) if where else (None, None)
            message = (
                f"playbook id {loaded.spec.id!r} is already used by {first.path.name}; "
                "give this playbook its own id"
            )
            invalid.append((path, ValidationFailed([Problem(str(path), line, "id", message, col)])))
            continue
        by_id[loaded.spec.id] = loaded
        valid.append(loaded)
    return FolderLoad(valid=valid, invalid=invalid, deferred=deferred)


def sync_folder(engine: Engine, folder: Path, clock: Clock, *, max_bytes: int = DEFAULT_MAX_PLAYBOOK_BYTES,
                deadline: float | None = None) -> SyncReport:
    """Bring the playbook tables in line with ``folder``, in one transaction; with a
    ``deadline``, only the files read by then (the others are left as they were)."""
    load = load_folder(folder, max_bytes=max_bytes, deadline=deadline)
    attempts = 3
    for attempt in range(attempts):
        try:
            with session_scope(engine) as session:
                return _sync(session, load, clock.now(), max_bytes)
        except IntegrityError:
            # Another process synced the same new revision at the same moment; read it again.
            if attempt == attempts - 1:
                raise
    raise AssertionError("unreachable")


def _sync(session: Session, load: FolderLoad, now: datetime, max_bytes: int) -> SyncReport:
    new_revisions: list[tuple[str, str]] = []
    errors_recorded: list[str] = []
    for loaded in load.valid:
        spec = loaded.spec
        playbook = session.get(Playbook, spec.id)
        if playbook is None:
            playbook = Playbook(id=spec.id)
            session.add(playbook)
        playbook.source_path = str(loaded.path)[:500]
        playbook.last_seen_at = now
        playbook.last_error = None
        session.flush()
        revision = session.exec(
            select(PlaybookRevision).where(
                PlaybookRevision.playbook_id == spec.id, PlaybookRevision.content_hash == loaded.content_hash
            )
        ).first()
        if revision is None:
            revision = PlaybookRevision(
                playbook_id=spec.id,
                content_hash=loaded.content_hash,
                title=spec.title[:300],
                owner=spec.owner[:32],
                source_path=str(loaded.path)[:500],
                source_text=loaded.text,
                created_at=now,
            )
            session.add(revision)
            session.flush()
            new_revisions.append((spec.id, loaded.content_hash))
        assert revision.id is not None
        playbook.current_revision_id = revision.id
        _sync_schedules(session, spec, revision.id, now)
    for path, failure in load.invalid:
        found = _peek_file_id(path, max_bytes)
        if found is None or not _ID.match(found[0]):
            continue
        playbook = session.get(Playbook, found[0])
        if playbook is None:
            playbook = Playbook(id=found[0], source_path=str(path)[:500])
            session.add(playbook)
        # Keep current_revision_id: a broken file never replaces the last good revision.
        playbook.last_error = failure.render()
        playbook.last_seen_at = now
        errors_recorded.append(found[0])
    session.flush()
    return SyncReport(valid=load.valid, invalid=load.invalid, new_revisions=new_revisions, errors_recorded=errors_recorded,
                      deferred=load.deferred)


_HEAD_BYTES = 64 * 1024
_ID_LINE = re.compile(r"^id:[ \t]*[\"']?([a-z0-9][a-z0-9._-]{0,99})[\"']?[ \t]*(?:#.*)?$", re.MULTILINE)


def _peek_file_id(path: Path, max_bytes: int) -> tuple[str, int, int] | None:
    """The id of an invalid file, to record its error on the playbook. A file that is too
    large, or not YAML that can be read (an alias bomb), is looked at only in its first
    64 KiB, for a plain ``id:`` line."""
    try:
        with path.open("rb") as fh:
            data = fh.read(max_bytes + 1)
    except OSError:
        return None
    text = data.decode("utf-8", errors="replace")
    found = peek_id(text) if len(data) <= max_bytes else None
    if found is not None:
        return found
    match = _ID_LINE.search(text[:_HEAD_BYTES])
    if match is None:
        return None
    line = text.count("\n", 0, match.start()) + 1
    return match.group(1), line, match.start(1) - match.start() + 1


def _sync_schedules(session: Session, spec: PlaybookSpec, revision_id: int, now: datetime) -> None:
    """Upsert the schedule rows; ``paused``, ``next_fire_at`` and ``last_fire_at`` belong to the scheduler."""
    existing = {row.key: row for row in session.exec(select(Schedule).where(Schedule.playbook_id == spec.id))}
    for wanted in spec.schedules:
        description = wanted.description[:300]
        row = existing.pop(wanted.key, None)
        if row is None:
            session.add(
                Schedule(
                    playbook_id=spec.id,
                    key=wanted.key,
                    revision_id=revision_id,
                    announced=wanted.announced,
                    description=description,
                    updated_at=now,
                )
            )
        elif (row.revision_id, row.announced, row.description) != (revision_id, wanted.announced, description):
            row.revision_id = revision_id
            row.announced = wanted.announced
            row.description = description
            row.updated_at = now
            session.add(row)
    for row in existing.values():  # removed from the playbook
        used = session.exec(select(TestRun.id).where(TestRun.schedule_id == row.id).limit(1)).first()
        if used is None:
            session.delete(row)
        elif not row.paused:
            # Runs still point at it (reports need it), so keep the row but stop it firing.
            row.paused = True
            row.updated_at = now
            session.add(row)


# -- reading revisions back ------------------------------------------------------

_cache: OrderedDict[str, PlaybookSpec] = OrderedDict()
_cache_lock = threading.Lock()


def spec_of(revision: PlaybookRevision) -> PlaybookSpec:
    """The parsed spec of a stored revision (cached by content hash: revisions never change)."""
    key = revision.content_hash
    with _cache_lock:
        if key in _cache:
            _cache.move_to_end(key)
            return _cache[key]
    spec = parse_playbook(revision.source_text, revision.source_path or f"revision {key[:12]}")
    with _cache_lock:
        _cache[key] = spec
        while len(_cache) > _CACHE_SIZE:
            _cache.popitem(last=False)
    return spec


def get_revision(session: Session, revision_id: int) -> tuple[PlaybookRevision, PlaybookSpec]:
    revision = session.get(PlaybookRevision, revision_id)
    if revision is None:
        raise NotFoundError(f"playbook revision {revision_id} does not exist")
    return revision, spec_of(revision)


def current_revision(session: Session, playbook_id: str) -> tuple[PlaybookRevision, PlaybookSpec]:
    playbook = session.get(Playbook, playbook_id)
    if playbook is None:
        known = ", ".join(session.exec(select(Playbook.id).order_by(Playbook.id)).all()) or "none"
        raise NotFoundError(
            f"no playbook {playbook_id!r} (known: {known}); check the id in `commtest playbook list`"
        )
    if playbook.current_revision_id is None:
        reason = (playbook.last_error or "").splitlines()[:1]
        detail = f": {reason[0]}" if reason else ""
        raise NotFoundError(
            f"playbook {playbook_id!r} has no valid revision yet{detail}; fix {playbook.source_path or 'its file'}"
        )
    return get_revision(session, playbook.current_revision_id)


def find_revision(session: Session, playbook_id: str, hash_prefix: str) -> tuple[PlaybookRevision, PlaybookSpec]:
    """The revision of ``playbook_id`` whose content hash starts with ``hash_prefix`` (at least 4 characters)."""
    prefix = hash_prefix.strip().lower()
    if len(prefix) < 4:
        raise NotFoundError(f"revision hash {hash_prefix!r} is too short; give at least 4 characters")
    matches = session.exec(
        select(PlaybookRevision).where(
            PlaybookRevision.playbook_id == playbook_id, PlaybookRevision.content_hash.startswith(prefix)
        )
    ).all()
    if not matches:
        raise NotFoundError(f"playbook {playbook_id!r} has no revision {hash_prefix!r}; see `commtest playbook show {playbook_id}`")
    if len(matches) > 1:
        raise NotFoundError(f"revision {hash_prefix!r} of {playbook_id!r} is ambiguous; give more characters")
    return matches[0], spec_of(matches[0])
