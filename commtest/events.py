"""The event log vocabulary and the one function that appends to it.

The log is append-only: nothing updates or deletes an ``Event``. Every state change of
a run or a ping appends one, in the same transaction as the change itself, so the
current state is derivable from the log and reports are computed from it alone.

Kinds (``Event.kind``) and what ``data`` holds:

Runs (``run_id`` set, ``ping_id`` empty)
    run.planned     playbook_id, revision_id, schedule_id, trigger, fire_at, announced
    run.announced   fire_at (an announced test told its participants beforehand)
    run.started     started_by
    run.completed   summary: {org: {channel: verdict}}
    run.aborted     by, reason
    run.refused     kinds, reason (a due run needs a channel kind with no provider: not started)
    run.missed      fire_at, reason
    run.gap         organisation_code, contact_point, field, channel, reason (nothing to ping on a
                    channel a step needs, e.g. no active endpoint: reports show "no endpoint")

Pings (``run_id`` and ``ping_id`` set; ``organisation_code`` and ``channel`` always)
    ping.planned     contact_point_id, contact_point, field, step, attempt, endpoint_id,
                     address (masked), due_at
    ping.dispatching provider                      (committed before the provider is called)
    ping.sent        provider, provider_ref, deadline_at, simulated (true when a sandbox or a local
                     fake carried it: never evidence)
    ping.delivered   status ("delivered" or "ringing"), provider_at
    ping.acked       method, by, late, suspicious, user_agent, source, simulated;  response_ms set
    ping.retry       next_attempt, reason
    ping.escalated   to_step, to_contact_point
    ping.answered    by           (someone or something picked up a call; the key press acknowledges)
    ping.unknown     reason        (found in ``dispatching`` at start-up; never resent)
    ping.cancelled   reason
    ping.reply_refused reason, message_sid, sender (masked): an SMS reply from the endpoint's number
                     without this ping's code; answered politely, it acknowledges nothing
    ping.answer_after_close  method, by, source, run_status: an answer that arrived after the run
                     completed or was aborted; kept, but it changes no verdict and no figure
    ping.settled     the outcome is decided (or changed, e.g. a late acknowledgement after
                     expiry): ``outcome`` (an ``Outcome``), ``response_ms`` when acknowledged,
                     data: method, reason. The last ``ping.settled`` of a ping is its outcome.

Directory
    endpoint.status  endpoint_id, status, reason       (no run, or the run that caused it)
    endpoint.verified endpoint_id                       (proven reachable by the run)

    endpoint.edited  endpoint_id, contact_point, kind, before, after (addresses masked), by: a
                     coordinator changed an endpoint in the console or the API
    directory.imported file, replace, counts, by (the API's import)
    correction.filed  correction_id, contact_point, fields (which details changed), by: a duty
                     officer sent new contact details from an acknowledgement page
    correction.approved correction_id, by, changes (what changed in the directory, masked)
    correction.rejected correction_id, by, note

Reports
    report.signed    month, by, comment, content_hash

Coordinators' actions (the audit trail; ``actor`` is ``console:<user>`` or ``api:<user>``)
    user.login       user, source
    user.login_failed user (the name typed), source, locked_until (when this failure locked it)
    user.logout      user
    schedule.paused  schedule (PLAYBOOK:KEY), by, withdrawn (planned runs withdrawn)
    schedule.resumed schedule, by
    playbook.uploaded playbook_id, content_hash, by
    token.created    token_id, user, name
    token.revoked    token_id, user, name
    feed.created     feed_id, organisation_code, by (a calendar feed URL)
    feed.revoked     feed_id, organisation_code, by
Runs started and aborted from the console or the API are ``run.planned`` / ``run.aborted``
events whose actor (or ``by``) names the user; a manual outcome is a ``ping.acked`` with
method ``manual:<how>`` and actor ``console:<user>``.
"""
from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlmodel import Session

from commtest.models import Event

RUN_PLANNED = "run.planned"
RUN_ANNOUNCED = "run.announced"
RUN_STARTED = "run.started"
RUN_COMPLETED = "run.completed"
RUN_ABORTED = "run.aborted"
RUN_MISSED = "run.missed"
RUN_GAP = "run.gap"
RUN_REFUSED = "run.refused"

PING_PLANNED = "ping.planned"
PING_DISPATCHING = "ping.dispatching"
PING_SENT = "ping.sent"
PING_DELIVERED = "ping.delivered"
PING_ACKED = "ping.acked"
PING_RETRY = "ping.retry"
PING_ESCALATED = "ping.escalated"
PING_UNKNOWN = "ping.unknown"
PING_CANCELLED = "ping.cancelled"
PING_SETTLED = "ping.settled"
PING_ANSWERED = "ping.answered"
PING_ANSWER_AFTER_CLOSE = "ping.answer_after_close"
PING_REPLY_REFUSED = "ping.reply_refused"

ENDPOINT_STATUS = "endpoint.status"
ENDPOINT_VERIFIED = "endpoint.verified"
REPORT_SIGNED = "report.signed"
ENDPOINT_EDITED = "endpoint.edited"
DIRECTORY_IMPORTED = "directory.imported"
CORRECTION_FILED = "correction.filed"
CORRECTION_APPROVED = "correction.approved"
CORRECTION_REJECTED = "correction.rejected"

USER_LOGIN = "user.login"
USER_LOGIN_FAILED = "user.login_failed"
USER_LOGOUT = "user.logout"
SCHEDULE_PAUSED = "schedule.paused"
SCHEDULE_RESUMED = "schedule.resumed"
PLAYBOOK_UPLOADED = "playbook.uploaded"
TOKEN_CREATED = "token.created"
TOKEN_REVOKED = "token.revoked"
FEED_CREATED = "feed.created"
FEED_REVOKED = "feed.revoked"
# What the console's audit page lists (besides runs started or aborted by a person).
AUDIT_KINDS = (USER_LOGIN, USER_LOGIN_FAILED, USER_LOGOUT, SCHEDULE_PAUSED, SCHEDULE_RESUMED, PLAYBOOK_UPLOADED,
               TOKEN_CREATED, TOKEN_REVOKED, FEED_CREATED, FEED_REVOKED, ENDPOINT_EDITED, DIRECTORY_IMPORTED,
               CORRECTION_FILED, CORRECTION_APPROVED, CORRECTION_REJECTED, REPORT_SIGNED)


def record_event(
    session: Session,
    *,
    at: datetime,
    actor: str,
    kind: str,
    run_id: int | None = None,
    ping_id: int | None = None,
    organisation_code: str | None = None,
    channel: str | None = None,
    outcome: str | None = None,
    response_ms: int | None = None,
    **data: Any,
) -> Event:
    """Append one event in the caller's transaction."""
    event = Event(
        at=at,
        actor=actor,
        kind=kind,
        run_id=run_id,
        ping_id=ping_id,
        organisation_code=organisation_code,
        channel=channel,
        outcome=outcome,
        response_ms=response_ms,
        data={k: jsonable(v) for k, v in data.items()},
    )
    session.add(event)
    return event


def jsonable(value: Any) -> Any:
    """``value`` as the event's JSON ``data`` holds it (instants as ISO 8601 text)."""
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    return value

