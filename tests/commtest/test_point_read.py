"""The acknowledgement pages' direct SQLite read: the same values as the engine's read, never
a wait for the write lock, and a clear refusal where it cannot work."""
from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Mapping
from datetime import timezone

import pytest
import sqlalchemy as sa

from commtest.clock import FrozenClock
from commtest.db import make_engine
from commtest.models import Ping
from commtest import point_read
from commtest.point_read import PointRead
from scheduler.acks import _LOOKUP_BY_TOKEN, TokenInfo, lookup_token, token_reader
from scheduler.records import token_hash
from tests.web.conftest import sent_run, web_settings


def test_a_point_read_gives_exactly_what_the_engines_read_gives(sqlite_url: str, clock: FrozenClock) -> None:
    engine = make_engine(sqlite_url)
    _, tokens = sent_run(engine, clock, web_settings(engine))
    reader = token_reader(engine)
    assert reader is not None
    for token in tokens.values():
        info = reader.first(token_hash=token_hash(token))
        assert isinstance(info, TokenInfo)  # the row is the page's TokenInfo as it is
        assert info == lookup_token(engine, token)
        assert info.sent_at is not None and info.sent_at.tzinfo == timezone.utc  # the column's own processor
        assert isinstance(info.organisation_names, Mapping) and isinstance(info.contact_languages, tuple)  # JSON decoded
    assert reader.first(token_hash=token_hash("x" * 43)) is None
    engine.dispose()


def test_a_page_that_changes_what_it_read_does_not_change_the_next_pages_read(sqlite_url: str,
                                                                              clock: FrozenClock) -> None:
    engine = make_engine(sqlite_url)
    _, tokens = sent_run(engine, clock, web_settings(engine))
    reader = token_reader(engine)
    assert reader is not None
    token = next(iter(tokens.values()))
    first = reader.first(token_hash=token_hash(token))
    with pytest.raises(TypeError):  # one decoded value is shared by the pages that read it: read-only
        first.organisation_names["xx"] = "changed by a page"
    again = reader.first(token_hash=token_hash(token))
    assert "xx" not in again.organisation_names and again == lookup_token(engine, token)
    engine.dispose()


def test_a_point_read_never_waits_for_a_writer_and_reads_the_last_commit(sqlite_url: str, clock: FrozenClock) -> None:
    engine = make_engine(sqlite_url)
    _, tokens = sent_run(engine, clock, web_settings(engine))
    token = next(iter(tokens.values()))
    reader = PointRead(engine, _LOOKUP_BY_TOKEN)
    writer = sqlite3.connect(sqlite_url.removeprefix("sqlite:///"), isolation_level=None)
    writer.execute("BEGIN IMMEDIATE")  # holds the write lock, as a long write would
    writer.execute("UPDATE ping SET channel = 'changed-not-committed' WHERE token_hash = ?", (token_hash(token),))
    row = reader.first(token_hash=token_hash(token))  # busy timeout 0: a wait would raise, not block
    assert row is not None and row.channel == "email"  # the committed snapshot
    writer.execute("COMMIT")
    row = reader.first(token_hash=token_hash(token))
    assert row is not None and row.channel == "changed-not-committed"
    writer.close()
    reader.close()
    engine.dispose()


def test_a_point_read_cannot_change_the_database(sqlite_url: str) -> None:
    engine = make_engine(sqlite_url)
    reader = PointRead(engine, sa.select(Ping.__table__.c.id).where(Ping.__table__.c.id == sa.bindparam("pid")))  # type: ignore[attr-defined]
    with pytest.raises(sqlite3.OperationalError, match="readonly"):
        reader._connection().execute("DELETE FROM ping")  # query_only: the pages' connection is read-only
    engine.dispose()


def test_a_point_read_is_refused_where_it_cannot_work(tmp_path: object) -> None:
    memory = make_engine("sqlite://")
    with pytest.raises(ValueError, match="in-memory"):
        PointRead(memory, _LOOKUP_BY_TOKEN)
    assert token_reader(memory) is None  # the pages read through the engine instead
    stamped = sa.select(Ping.__table__.c.id).where(Ping.__table__.c.sent_at > sa.bindparam("at", type_=Ping.__table__.c.sent_at.type))  # type: ignore[attr-defined]
    with pytest.raises(ValueError, match="parameters as they are"):
        PointRead(make_engine(f"sqlite:///{tmp_path}/x.db"), stamped)


def test_reads_in_one_turn_of_an_event_loop_share_a_snapshot_that_ends_with_the_turn(
        sqlite_url: str, clock: FrozenClock) -> None:
    engine = make_engine(sqlite_url)
    _, tokens = sent_run(engine, clock, web_settings(engine))
    key = token_hash(next(iter(tokens.values())))
    reader = PointRead(engine, _LOOKUP_BY_TOKEN)
    writer = sqlite3.connect(sqlite_url.removeprefix("sqlite:///"), isolation_level=None)

    def change(language: str) -> None:
        writer.execute("UPDATE ping SET language = ? WHERE token_hash = ?", (language, key))  # committed at once

    first = reader.first(token_hash=key).language
    assert first not in ("fr", "de")

    async def pages() -> list[str]:
        seen = [reader.first(token_hash=key).language]
        change("fr")  # committed while this turn's pages are still being served
        seen.append(reader.first(token_hash=key).language)  # the same turn: the same snapshot
        await asyncio.sleep(0)  # the next turn of the loop
        seen.append(reader.first(token_hash=key).language)  # a new snapshot: the commit is seen
        await asyncio.sleep(0)
        assert not reader._connection().in_transaction  # the snapshot ended with its turn
        return seen

    assert asyncio.run(pages()) == [first, first, "fr"]
    change("de")
    assert reader.first(token_hash=key).language == "de"  # off a loop: each read its own transaction
    assert not reader._connection().in_transaction
    writer.close()
    reader.close()
    engine.dispose()


def test_a_shared_snapshot_is_never_read_for_longer_than_half_a_second(
        sqlite_url: str, clock: FrozenClock, monkeypatch: pytest.MonkeyPatch) -> None:
    engine = make_engine(sqlite_url)
    _, tokens = sent_run(engine, clock, web_settings(engine))
    key = token_hash(next(iter(tokens.values())))
    reader = PointRead(engine, _LOOKUP_BY_TOKEN)
    writer = sqlite3.connect(sqlite_url.removeprefix("sqlite:///"), isolation_level=None)
    now = [1000.0]
    monkeypatch.setattr(point_read, "_monotonic", lambda: now[0])

    async def one_long_turn() -> list[str]:
        seen = [reader.first(token_hash=key).language]
        writer.execute("UPDATE ping SET language = 'fr' WHERE token_hash = ?", (key,))
        now[0] += 0.4
        seen.append(reader.first(token_hash=key).language)  # within half a second: the same snapshot
        now[0] += 0.2
        seen.append(reader.first(token_hash=key).language)  # older than that: a new one
        return seen

    first = asyncio.run(one_long_turn())
    assert first[1] == first[0] != "fr" and first[2] == "fr"
    writer.close()
    reader.close()
    engine.dispose()


@pytest.mark.parametrize("zone", [None, "", "Europe/Luxembourg"])
def test_a_pages_zone_is_its_contact_points_else_its_organisations_as_the_engines_read_picks_it(
        sqlite_url: str, clock: FrozenClock, zone: str | None) -> None:
    from commtest.models import ContactPoint

    engine = make_engine(sqlite_url)
    _, tokens = sent_run(engine, clock, web_settings(engine))
    with engine.begin() as c:
        c.execute(sa.update(ContactPoint.__table__).values(timezone=zone))  # type: ignore[attr-defined]
    reader = token_reader(engine)
    assert reader is not None
    for token in tokens.values():
        info = reader.first(token_hash=token_hash(token))
        assert info is not None and info == lookup_token(engine, token)
        assert info.timezone == (zone or lookup_token(engine, token).timezone) and info.timezone  # type: ignore[union-attr]
    reader.close()
    engine.dispose()
