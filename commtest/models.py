"""The tables (SQLModel ``table=True``).

Table models do not validate their input (a known SQLModel pitfall): every value is
validated by a separate non-table model or function before it gets here.

Times are aware UTC. ``UTCDateTime`` makes SQLite (which stores no zone) hand them
back as aware UTC too, so code never meets a naive datetime.
"""
from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

import sqlalchemy as sa
from sqlalchemy.types import TypeDecorator
from sqlmodel import Field, SQLModel

from commtest.clock import ensure_utc


class UTCDateTime(TypeDecorator[datetime]):
    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the database; use aware UTC")
        return ensure_utc(value)

    def process_result_value(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        return None if value is None else ensure_utc(value)


def _ts(nullable: bool = True, index: bool = False) -> Any:
    return Field(default=None, sa_column=sa.Column(UTCDateTime(), nullable=nullable, index=index))


def _json(default: Any = None) -> Any:
    factory = (lambda: list(default)) if isinstance(default, list) else (lambda: dict(default or {}))
    return Field(default_factory=factory, sa_column=sa.Column(sa.JSON(), nullable=False))


# ---------------------------------------------------------------------------
# enumerations (stored as plain strings)


class ChannelKind(StrEnum):
    email = "email"
    voice = "voice"
    sms = "sms"
    video = "video"
    cap = "cap"
    manual = "manual"


class EndpointStatus(StrEnum):
    active = "active"
    suspect = "suspect"  # a bounce or a refusal: still tried, after the active ones
    invalid = "invalid"  # known to be wrong: never tried
    # The number refuses our SMS (it replied STOP; Twilio answers 21610 until it sends START):
    # never tried, and only the number's own START (or a coordinator's edit) makes it active again.
    blocked = "blocked"


class RunStatus(StrEnum):
    planned = "planned"  # created, fire time in the future (unannounced moment stored)
    running = "running"
    completed = "completed"
    aborted = "aborted"
    missed = "missed"  # the daemon was down past the misfire grace


class PingState(StrEnum):
    pending = "pending"
    dispatching = "dispatching"  # committed before the provider is called
    sent = "sent"
    delivered = "delivered"
    acked = "acked"
    expired = "expired"  # deadline passed without acknowledgement
    failed = "failed"
    unknown = "unknown"  # found dispatching after a crash: never resent automatically
    cancelled = "cancelled"  # run aborted before it was sent


class Outcome(StrEnum):
    """What a report must tell apart (ARCHITECTURE.md, "Outcome classes")."""

    acked = "acked"
    acked_late = "acked_late"
    voicemail = "voicemail"
    delivered_no_ack = "delivered_no_ack"
    away = "away"
    bounced = "bounced"
    invalid_endpoint = "invalid_endpoint"
    provider_failure = "provider_failure"
    unknown = "unknown"
    manual = "manual"
    self_reported = "self_reported"
    cancelled = "cancelled"
    # The phone: a busy line, a call nobody picked up, a number that sent STOP.
    busy = "busy"
    no_answer = "no_answer"
    blocked = "blocked"
    # A manual check (radio, satellite, call back) that no coordinator recorded by its deadline.
    no_record = "no_record"
    # Our side: the playbook's template failed for this contact point at send time.
    template_error = "template_error"
    # The run was aborted while this attempt waited for its answer.
    aborted = "aborted"


class Role(StrEnum):
    viewer = "viewer"
    coordinator = "coordinator"
    reviewer = "reviewer"
    admin = "admin"


# ---------------------------------------------------------------------------
# directory


class Organisation(SQLModel, table=True):
    __tablename__ = "organisation"

    id: int | None = Field(default=None, primary_key=True)
    code: str = Field(max_length=32, unique=True, index=True)  # e.g. BE-NCCN
    name: str = Field(max_length=200)
    names: dict[str, str] = _json({})  # the name in other languages, for reports read in them
    country: str = Field(max_length=8)  # ISO 3166-1 alpha-2, or a subdivision such as DE-NW
    languages: list[str] = _json([])  # BCP 47 tags, preferred first
    timezone: str = Field(max_length=64)  # IANA
    role: str = Field(default="participant", max_length=32)  # participant | coordinator
    notes: str = Field(default="", max_length=2000)


class FieldOfWork(SQLModel, table=True):
    __tablename__ = "field_of_work"

    id: int | None = Field(default=None, primary_key=True)
    code: str = Field(max_length=64, unique=True, index=True)  # e.g. crisis-desk
    name: str = Field(max_length=200)
    names: dict[str, str] = _json({})  # translations by language tag


class ContactPoint(SQLModel, table=True):
    __tablename__ = "contact_point"
    __table_args__ = (sa.UniqueConstraint("code", name="uq_contact_point_code"),)

    id: int | None = Field(default=None, primary_key=True)
    code: str = Field(max_length=100, index=True)  # stable key, e.g. BE-NCCN/crisis-desk
    organisation_id: int = Field(foreign_key="organisation.id", index=True)
    field_id: int = Field(foreign_key="field_of_work.id", index=True)
    name: str = Field(max_length=200)  # a person's name or a desk's name
    kind: str = Field(default="desk", max_length=16)  # person | desk
    title: str = Field(default="", max_length=200)
    languages: list[str] = _json([])
    timezone: str | None = Field(default=None, max_length=64)  # overrides the organisation's
    active: bool = Field(default=True)
    notes: str = Field(default="", max_length=2000)


class Endpoint(SQLModel, table=True):
    __tablename__ = "endpoint"
    __table_args__ = (sa.UniqueConstraint("contact_point_id", "kind", "address", name="uq_endpoint_address"),)

    id: int | None = Field(default=None, primary_key=True)
    contact_point_id: int = Field(foreign_key="contact_point.id", index=True)
    kind: str = Field(max_length=16)  # ChannelKind
    address: str = Field(max_length=320)  # E.164 for voice/sms, e-mail, URL, ...
    priority: int = Field(default=1)  # 1 is tried first
    label: str = Field(default="", max_length=100)
    status: str = Field(default=EndpointStatus.active.value, max_length=16)
    verified_at: datetime | None = _ts()  # last proven reachable
    verified_run_id: int | None = Field(default=None)
    last_outcome: str | None = Field(default=None, max_length=32)
    last_outcome_at: datetime | None = _ts()


# ---------------------------------------------------------------------------
# playbooks and schedules


class Playbook(SQLModel, table=True):
    """A playbook file as last seen in the playbook folder."""

    __tablename__ = "playbook"

    id: str = Field(primary_key=True, max_length=100)
    current_revision_id: int | None = Field(default=None)
    source_path: str = Field(default="", max_length=500)
    last_error: str | None = Field(default=None, sa_column=sa.Column(sa.Text(), nullable=True))
    last_seen_at: datetime | None = _ts()


class PlaybookRevision(SQLModel, table=True):
    """Immutable: a run points at the exact revision it ran (content-hashed)."""

    __tablename__ = "playbook_revision"
    __table_args__ = (sa.UniqueConstraint("playbook_id", "content_hash", name="uq_revision_hash"),)

    id: int | None = Field(default=None, primary_key=True)
    playbook_id: str = Field(foreign_key="playbook.id", index=True, max_length=100)
    content_hash: str = Field(max_length=64)  # sha256 hex of the source text
    title: str = Field(max_length=300)
    owner: str = Field(max_length=32)  # organisation code
    source_path: str = Field(default="", max_length=500)
    source_text: str = Field(sa_column=sa.Column(sa.Text(), nullable=False))
    created_at: datetime | None = _ts(nullable=False)


class Schedule(SQLModel, table=True):
    """One schedule of a playbook; ``key`` is its name inside the playbook."""

    __tablename__ = "schedule"
    __table_args__ = (sa.UniqueConstraint("playbook_id", "key", name="uq_schedule_key"),)

    id: int | None = Field(default=None, primary_key=True)
    playbook_id: str = Field(foreign_key="playbook.id", index=True, max_length=100)
    key: str = Field(max_length=100)
    revision_id: int = Field(foreign_key="playbook_revision.id")
    paused: bool = Field(default=False)
    announced: bool = Field(default=False)
    description: str = Field(default="", max_length=300)
    next_fire_at: datetime | None = _ts()  # the next planned (or drawn) moment, UTC
    last_fire_at: datetime | None = _ts()
    updated_at: datetime | None = _ts()


# ---------------------------------------------------------------------------
# runs, pings, events


# A run of ``commtest channel test``: one ping to one endpoint; the monthly report leaves it out.
CHANNEL_TEST_TRIGGER = "channel-test"


class TestRun(SQLModel, table=True):
    __tablename__ = "test_run"
    __test__ = False  # not a pytest test class
    __table_args__ = (sa.UniqueConstraint("dedupe_key", name="uq_run_dedupe"),)

    id: int | None = Field(default=None, primary_key=True)
    playbook_id: str = Field(foreign_key="playbook.id", index=True, max_length=100)
    revision_id: int = Field(foreign_key="playbook_revision.id")
    schedule_id: int | None = Field(default=None, foreign_key="schedule.id")
    # "<schedule id>@<fire time ISO>" for scheduled runs, "manual:<uuid>" otherwise:
    # a run is unique on (schedule, fire time) even with several replicas.
    dedupe_key: str = Field(max_length=200)
    trigger: str = Field(default="manual", max_length=16)  # schedule | manual | channel-test
    announced: bool = Field(default=False)
    status: str = Field(default=RunStatus.planned.value, max_length=16, index=True)
    fire_at: datetime | None = _ts(nullable=False, index=True)  # planned or drawn moment
    window_start: datetime | None = _ts()
    window_end: datetime | None = _ts()
    started_at: datetime | None = _ts()
    finished_at: datetime | None = _ts()
    started_by: str = Field(default="", max_length=100)
    note: str = Field(default="", max_length=2000)


class Ping(SQLModel, table=True):
    __tablename__ = "ping"
    __table_args__ = (
        # The invariant: never twice for the same (run, contact point, channel, attempt).
        sa.UniqueConstraint("run_id", "contact_point_id", "channel", "attempt", name="uq_ping_once"),
        sa.Index("ix_ping_run_state", "run_id", "state"),
        # The leader's timers: the next deadline of an attempt waiting for its answer, the next
        # attempt due to be sent (a scan of the whole table every tick, before these).
        sa.Index("ix_ping_state_deadline", "state", "deadline_at"),
        sa.Index("ix_ping_state_due", "state", "due_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    # (no index of its own: ix_ping_run_state and uq_ping_once begin with it)
    run_id: int = Field(foreign_key="test_run.id")
    contact_point_id: int = Field(foreign_key="contact_point.id")
    endpoint_id: int | None = Field(default=None, foreign_key="endpoint.id")
    organisation_code: str = Field(max_length=32)  # denormalised for reports (always read with the run)
    channel: str = Field(max_length=16)
    provider: str = Field(default="", max_length=32)
    address: str = Field(default="", max_length=320)  # the endpoint address as it was at send time
    language: str = Field(default="en", max_length=16)
    step: str = Field(default="", max_length=100)  # step id in the playbook
    attempt: int = Field(default=1)  # per (run, contact point, channel): the uniqueness key
    step_attempt: int = Field(default=1)  # 1 + retries so far within the step
    escalated_from_id: int | None = Field(default=None)  # the ping whose silence caused this one
    state: str = Field(default=PingState.pending.value, max_length=16)
    outcome: str | None = Field(default=None, max_length=32)  # Outcome, once settled
    due_at: datetime | None = _ts(nullable=False)  # when it should be sent
    deadline_at: datetime | None = _ts()  # acknowledgement deadline, set when sent
    dispatching_at: datetime | None = _ts()
    sent_at: datetime | None = _ts()
    delivered_at: datetime | None = _ts()  # or ringing, for calls
    acked_at: datetime | None = _ts()
    settled_at: datetime | None = _ts()
    ack_method: str | None = Field(default=None, max_length=32)  # link, email-reply, keypress, sms-reply, ...
    ack_by: str | None = Field(default=None, max_length=200)
    ack_suspicious: bool = Field(default=False)
    provider_ref: str | None = Field(default=None, max_length=200, index=True)  # Message-ID, Call SID, ...
    token_hash: str | None = Field(default=None, max_length=64, unique=True)  # sha256 of the ack token
    token_expires_at: datetime | None = _ts()
    ack_code: str | None = Field(default=None, max_length=12)  # short code for SMS/voice replies
    error: str | None = Field(default=None, max_length=1000)
    # Carried by a provider that plays the far side (sandbox, a local fake): never evidence.
    simulated: bool = Field(default=False)


class Event(SQLModel, table=True):
    """Append-only log. A run's state is derivable from its events; reports read only this."""

    __tablename__ = "event"
    __table_args__ = (
        sa.Index("ix_event_run", "run_id", "id"),
        # Reports pick each ping's last ``ping.settled``: (kind, ping_id, id) answers that from the index.
        sa.Index("ix_event_kind_ping", "kind", "ping_id", "id"),
    )

    id: int | None = Field(default=None, primary_key=True)
    at: datetime | None = _ts(nullable=False, index=True)
    actor: str = Field(max_length=100)  # daemon:<host>, web, imap, cli:<user>, provider:<name>
    run_id: int | None = Field(default=None, foreign_key="test_run.id")
    # Neither has an index of its own: every read by ping or by kind names the kind, which
    # ix_event_kind_ping answers; each index costs every event written (issue 10: dispatch).
    ping_id: int | None = Field(default=None, foreign_key="ping.id")
    kind: str = Field(max_length=48)  # see commtest.events for the vocabulary
    # Denormalised on ping events so that reports are SQL aggregates over this table alone.
    organisation_code: str | None = Field(default=None, max_length=32)
    channel: str | None = Field(default=None, max_length=16)
    outcome: str | None = Field(default=None, max_length=32)
    response_ms: int | None = Field(default=None)
    data: dict[str, Any] = _json({})


# ---------------------------------------------------------------------------
# facts derived from the event log (rebuildable from it: `commtest db rebuild-facts`)


class CheckFact(SQLModel, table=True):
    """One check of a closed run: did (contact point, channel) answer, and how fast.

    Written once when the run closes, from the run's events (commtest.facts); reports
    aggregate this table. Rates, medians and percentiles are over checks, not attempts.
    """

    __tablename__ = "check_fact"
    __table_args__ = (
        sa.UniqueConstraint("run_id", "contact_point_id", "channel", name="uq_check_fact"),
        sa.Index("ix_check_fact_fire", "fire_at"),
        # The last checks of one contact point on one channel (failure streaks, what is still open).
        sa.Index("ix_check_fact_pair", "contact_point_id", "channel", "fire_at", "run_id"),
    )

    id: int | None = Field(default=None, primary_key=True)
    run_id: int = Field(foreign_key="test_run.id", index=True)
    fire_at: datetime | None = _ts(nullable=False)  # the run's moment: a check belongs to its run's month
    organisation_code: str = Field(max_length=32)
    contact_point_id: int
    contact_point_code: str = Field(default="", max_length=100)
    field_code: str = Field(default="", max_length=64)
    channel: str = Field(max_length=16)
    attempts_planned: int = Field(default=0)
    attempts_sent: int = Field(default=0)
    first_contact_at: datetime | None = _ts()
    answered_at: datetime | None = _ts()
    response_ms: int | None = Field(default=None)
    outcome: str = Field(max_length=32)
    status: str = Field(max_length=16)  # pass | fail | not_tested | cancelled | aborted
    method: str | None = Field(default=None, max_length=32)
    answered_by: str | None = Field(default=None, max_length=200)
    late: bool = Field(default=False)
    suspicious: bool = Field(default=False)
    simulated: bool = Field(default=False)
    target_ms: int | None = Field(default=None)
    endpoint_id: int | None = Field(default=None)  # the endpoint of the answering (else the last sent) attempt
    address: str = Field(default="", max_length=320)
    provider: str = Field(default="", max_length=32)
    detail: str = Field(default="", max_length=1000)


class MonthRollup(SQLModel, table=True):
    """The figures of one settled month (its end passed, every run in it closed), per channel
    and for all channels (``channel`` empty), in one report time zone: what the 12-month trend
    of every later monthly report shows. Computed from ``check_fact`` the first time a report
    needs them; read only while the month's closed runs are still those they came from
    (``closed_runs``, ``last_run_id``); ``commtest db rebuild-facts`` clears them."""

    __tablename__ = "month_rollup"

    timezone: str = Field(primary_key=True, max_length=64)
    month: str = Field(primary_key=True, max_length=7)  # YYYY-MM
    channel: str = Field(primary_key=True, default="", max_length=16)  # "" = all channels
    runs: int = Field(default=0)
    checks: int = Field(default=0)
    answered: int = Field(default=0)
    in_target: int = Field(default=0)
    median_ms: int | None = Field(default=None)
    p90_ms: int | None = Field(default=None)
    # Which runs they came from: how many closed runs fired in the month, and the highest id among
    # them (a run's checks are written once, when it closes). A run added to the month later shows,
    # and the month is computed again instead of read.
    closed_runs: int = Field(default=0)
    last_run_id: int = Field(default=0)
    computed_at: datetime | None = _ts(nullable=False)


class VerdictFact(SQLModel, table=True):
    """The verdict of one organisation on one channel in a closed run (answer: any|all)."""

    __tablename__ = "verdict_fact"
    __table_args__ = (
        sa.UniqueConstraint("run_id", "organisation_code", "channel", name="uq_verdict_fact"),
        sa.Index("ix_verdict_fact_fire", "fire_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    run_id: int = Field(foreign_key="test_run.id", index=True)
    fire_at: datetime | None = _ts(nullable=False)
    organisation_code: str = Field(max_length=32)
    channel: str = Field(max_length=16)
    verdict: str = Field(max_length=16)  # pass | fail | not_tested | no_endpoint | aborted | cancelled
    answer: str = Field(default="any", max_length=8)
    checks: int = Field(default=0)
    answered: int = Field(default=0)
    in_target: int = Field(default=0)
    gaps: int = Field(default=0)
    best_response_ms: int | None = Field(default=None)
    target_ms: int | None = Field(default=None)
    simulated: bool = Field(default=False)


# ---------------------------------------------------------------------------
# web, mail reader, reports


class User(SQLModel, table=True):
    __tablename__ = "app_user"

    id: int | None = Field(default=None, primary_key=True)
    username: str = Field(max_length=100, unique=True, index=True)
    display_name: str = Field(default="", max_length=200)
    email: str | None = Field(default=None, max_length=320)
    role: str = Field(default=Role.viewer.value, max_length=16)
    password_hash: str | None = Field(default=None, max_length=300)
    active: bool = Field(default=True)
    created_at: datetime | None = _ts()


class ConsoleSession(SQLModel, table=True):
    """A signed-in console session. The cookie carries a random token; only its sha256 is
    stored, and signing out deletes the row, so a copied cookie stops working at once."""

    __tablename__ = "console_session"

    id: int | None = Field(default=None, primary_key=True)
    token_hash: str = Field(max_length=64, unique=True)
    user_id: int = Field(foreign_key="app_user.id", index=True)
    created_at: datetime | None = _ts(nullable=False)
    expires_at: datetime | None = _ts(nullable=False, index=True)
    last_seen_at: datetime | None = _ts()
    source: str = Field(default="", max_length=64)  # the address it signed in from
    user_agent: str = Field(default="", max_length=300)


class LoginThrottle(SQLModel, table=True):
    """Failed sign-ins per user name (whatever the source address, existing or not): after a
    few, the name is locked for a growing time."""

    __tablename__ = "login_throttle"

    username: str = Field(primary_key=True, max_length=100)
    failures: int = Field(default=0)
    last_failed_at: datetime | None = _ts()
    locked_until: datetime | None = _ts()


class ApiToken(SQLModel, table=True):
    """A personal API token: shown once when created, stored as its sha256; acts with its
    user's current role."""

    __tablename__ = "api_token"

    id: int | None = Field(default=None, primary_key=True)
    user_id: int = Field(foreign_key="app_user.id", index=True)
    name: str = Field(max_length=100)
    token_hash: str = Field(max_length=64, unique=True)
    prefix: str = Field(max_length=16)  # the first characters, to recognise it in a list
    created_at: datetime | None = _ts(nullable=False)
    last_used_at: datetime | None = _ts()
    revoked_at: datetime | None = _ts()


class DirectoryCorrection(SQLModel, table=True):
    """New contact details sent by a duty officer from an acknowledgement page, waiting for
    a coordinator to approve (the directory changes) or reject them."""

    __tablename__ = "directory_correction"

    id: int | None = Field(default=None, primary_key=True)
    ping_id: int = Field(foreign_key="ping.id", index=True)
    run_id: int = Field(foreign_key="test_run.id")
    contact_point_id: int = Field(foreign_key="contact_point.id", index=True)
    organisation_code: str = Field(max_length=32)
    channel: str = Field(max_length=16)  # of the ping it came with
    phone: str | None = Field(default=None, max_length=32)  # E.164, validated
    email: str | None = Field(default=None, max_length=320)
    contact_name: str | None = Field(default=None, max_length=200)
    note: str = Field(default="", max_length=1000)
    submitted_by: str = Field(default="", max_length=200)
    submitted_at: datetime | None = _ts(nullable=False)
    source: str = Field(default="", max_length=64)
    status: str = Field(default="pending", max_length=16, index=True)  # pending | approved | rejected
    decided_by: str | None = Field(default=None, max_length=100)
    decided_at: datetime | None = _ts()
    decision_note: str = Field(default="", max_length=1000)


class CalendarFeed(SQLModel, table=True):
    """A secret iCalendar URL of one organisation's announced tests."""

    __tablename__ = "calendar_feed"

    id: int | None = Field(default=None, primary_key=True)
    organisation_code: str = Field(max_length=32, index=True)
    token_hash: str = Field(max_length=64, unique=True)
    created_at: datetime | None = _ts(nullable=False)
    created_by: str = Field(default="", max_length=100)
    revoked_at: datetime | None = _ts()


class LeaderHeartbeat(SQLModel, table=True):
    """Written by the scheduler leader every few seconds: who leads, when it last ticked and
    how late its ticks ran (what ``/metrics`` reports, read-only)."""

    __tablename__ = "leader_heartbeat"

    id: int = Field(default=1, primary_key=True)
    holder: str = Field(default="", max_length=200)
    beat_at: datetime | None = _ts(nullable=False)
    ticks: int = Field(default=0)
    tick_lateness_ms: int = Field(default=0)  # the latest tick
    tick_lateness_max_ms: int = Field(default=0)  # the worst since the previous beat
    # Deadline decisions: committed how long after the deadline (the latest, the worst since the
    # previous beat), and how many decisions lost a race and were run again since the leader started.
    decision_lateness_ms: int = Field(default=0, sa_column_kwargs={"server_default": "0"})
    decision_lateness_max_ms: int = Field(default=0, sa_column_kwargs={"server_default": "0"})
    decision_retries: int = Field(default=0, sa_column_kwargs={"server_default": "0"})


class InboundMessage(SQLModel, table=True):
    """Each e-mail the reader processed, so a restart or a duplicate delivery counts once."""

    __tablename__ = "inbound_message"

    id: int | None = Field(default=None, primary_key=True)
    message_key: str = Field(max_length=400, unique=True)  # Message-ID, or a digest when missing
    mailbox: str = Field(default="", max_length=200)
    uid: str | None = Field(default=None, max_length=64)
    received_at: datetime | None = _ts()
    ping_id: int | None = Field(default=None, foreign_key="ping.id")
    classification: str = Field(max_length=32)  # human, auto-reply, bounce, unmatched
    summary: str = Field(default="", max_length=500)


class MonthlyReport(SQLModel, table=True):
    """A monthly report; once signed it is frozen (its numbers are stored, not recomputed)."""

    __tablename__ = "monthly_report"

    id: int | None = Field(default=None, primary_key=True)
    month: str = Field(max_length=7, unique=True)  # YYYY-MM
    generated_at: datetime | None = _ts()
    status: str = Field(default="draft", max_length=16)  # draft | signed
    data: dict[str, Any] = _json({})  # the computed figures
    content_hash: str = Field(default="", max_length=64)
    signed_by: str | None = Field(default=None, max_length=100)
    signer_name: str | None = Field(default=None, max_length=200)  # the display name, as it was at signing
    signed_at: datetime | None = _ts()
    # Signed with --include-simulated: the month had checks a sandbox answered, and the signature says so.
    includes_simulated: bool = Field(default=False)
    comment: str = Field(default="", sa_column=sa.Column(sa.Text(), nullable=False, server_default=""))
    emailed_at: datetime | None = _ts()


class DirectoryEdition(SQLModel, table=True):
    """A published edition of the contact directory, to show what changed since the previous one."""

    __tablename__ = "directory_edition"

    id: int | None = Field(default=None, primary_key=True)
    created_at: datetime | None = _ts(nullable=False)
    run_id: int | None = Field(default=None, foreign_key="test_run.id")
    content_hash: str = Field(max_length=64)
    snapshot: dict[str, Any] = _json({})


__all__ = [
    "CHANNEL_TEST_TRIGGER",
    "ApiToken",
    "CalendarFeed",
    "ChannelKind",
    "CheckFact",
    "ConsoleSession",
    "DirectoryCorrection",
    "LeaderHeartbeat",
    "LoginThrottle",
    "VerdictFact",
    "ContactPoint",
    "DirectoryEdition",
    "Endpoint",
    "EndpointStatus",
    "Event",
    "FieldOfWork",
    "InboundMessage",
    "MonthlyReport",
    "Organisation",
    "Outcome",
    "Ping",
    "PingState",
    "Playbook",
    "PlaybookRevision",
    "Role",
    "RunStatus",
    "Schedule",
    "TestRun",
    "UTCDateTime",
    "User",
]
