"""What the API answers and accepts (pydantic models: they are the OpenAPI document)."""
from __future__ import annotations

from datetime import datetime
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field

T = TypeVar("T")


class _Out(BaseModel):
    model_config = ConfigDict(frozen=True)


class Page(_Out, Generic[T]):
    items: list[T]
    total: int = Field(description="How many there are in all.")
    limit: int
    offset: int
    next: str | None = Field(None, description="The URL of the next page, or null on the last one.")


class EndpointOut(_Out):
    id: int
    kind: str
    address: str
    priority: int
    label: str
    status: str
    verified_at: datetime | None = Field(description="When it was last proven reachable (never by a simulated test).")
    last_outcome: str | None
    last_outcome_at: datetime | None


class ContactPointOut(_Out):
    code: str
    field: str
    name: str
    kind: str
    active: bool
    languages: list[str]
    endpoints: list[EndpointOut]


class OrganisationOut(_Out):
    code: str
    name: str
    country: str
    role: str
    languages: list[str]
    timezone: str
    contact_points: list[ContactPointOut]


class FieldOut(_Out):
    code: str
    name: str


class DirectoryPage(Page[OrganisationOut]):
    fields_of_work: list[FieldOut]


class ImportCounts(_Out):
    kind: str
    created: int
    updated: int
    unchanged: int
    deleted: int
    deactivated: int


class ImportResult(_Out):
    replace: bool
    dry_run: bool
    counts: list[ImportCounts]
    notes: list[str]


class RevisionOut(_Out):
    id: int
    content_hash: str
    title: str
    created_at: datetime | None


class PlaybookOut(_Out):
    id: str
    title: str
    current_revision: RevisionOut | None
    last_error: str | None = Field(description="Why the file in the folder is refused, when it is.")


class PlaybookDetail(PlaybookOut):
    revisions: list[RevisionOut]
    channels: list[str]
    participants: list[str]


class ValidationResult(_Out):
    valid: bool
    id: str
    title: str
    channels: list[str]


class PlannedPingOut(_Out):
    organisation: str
    contact_point: str
    step: str
    channel: str
    address: str
    language: str
    start_after_s: float
    ack_deadline_s: float


class Preview(_Out):
    playbook_id: str
    pings: list[PlannedPingOut]
    escalation_steps: list[str]
    channels: dict[str, str] = Field(description="Each channel kind: real, sandbox (SIMULATED) or not configured.")
    refusal: str | None = Field(description="Why a run would be refused now, or null.")


class ScheduleOut(_Out):
    id: int
    ref: str = Field(description="PLAYBOOK_ID:KEY")
    description: str
    announced: bool
    paused: bool
    next_fire_at: datetime | None = Field(description="Announced schedules only: an unannounced moment is never shown.")
    last_fire_at: datetime | None


class RunOut(_Out):
    id: int
    playbook_id: str
    revision_id: int
    status: str
    trigger: str
    announced: bool
    fire_at: datetime | None = Field(description="null for an unannounced test that has not started")
    started_at: datetime | None
    finished_at: datetime | None
    started_by: str
    simulated: bool = Field(description="A sandbox answered for the officers: SIMULATED, not evidence.")


class CheckOut(_Out):
    organisation: str
    contact_point: str
    channel: str
    status: str
    outcome: str
    attempts_sent: int
    attempts_planned: int
    first_contact_at: datetime | None
    answered_at: datetime | None
    response_ms: int | None
    method: str | None
    simulated: bool


class VerdictOut(_Out):
    organisation: str
    channel: str
    verdict: str
    answer: str
    checks: int
    answered: int
    response_ms: int | None
    simulated: bool


class RunStatusOut(_Out):
    run: RunOut
    verdicts: list[VerdictOut]
    checks: list[CheckOut]
    open_attempts: int


class StartRun(BaseModel):
    model_config = ConfigDict(extra="forbid")
    playbook_id: str = Field(min_length=1, max_length=100)
    note: str = Field("", max_length=2000)


class AbortRun(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: str = Field("", max_length=500)


class ManualOutcome(BaseModel):
    model_config = ConfigDict(extra="forbid")
    ping_id: int = Field(ge=1)
    how: str = Field(min_length=1, max_length=24, description="radio, satellite phone, call back, ...")
    by: str = Field("", max_length=200, description="Who answered at the centre.")


class AckOut(_Out):
    ping_id: int
    status: str = Field(description="acked, already or after_close")
    response_ms: int | None
    acked_at: datetime | None


class MonthlyOut(_Out):
    month: str
    status: str
    generated_at: datetime | None
    content_hash: str
    signed_by: str | None
    signed_at: datetime | None
    comment: str


class MonthlyDetail(MonthlyOut):
    figures: dict[str, Any]


class SignMonthly(BaseModel):
    model_config = ConfigDict(extra="forbid")
    comment: str = Field(min_length=1, max_length=4000)
    password: str = Field(min_length=1, max_length=1000, description="The signer's own password, again.")
    content_hash: str | None = Field(None, max_length=64, description="Sign only if the figures still have this hash.")
