"""The words of the domain a person reads (channel kinds, outcomes, methods, verdicts, event
kinds), as English message ids for the gettext catalogues (commtest.i18n).

Code keeps the lowercase identifiers (``"voice"``, ``"acked_late"``); whatever shows one to a
person translates it through ``name_of``, so no report says "keypress" in French.
"""
from __future__ import annotations

from typing import Protocol

from commtest.channel_names import CHANNELS
from commtest.i18n import N_


class _Translate(Protocol):
    def __call__(self, message: str) -> str: ...



OUTCOMES = {
    "acked": N_("acknowledged"),
    "acked_late": N_("acknowledged late"),
    "voicemail": N_("answering machine"),
    "delivered_no_ack": N_("delivered, no acknowledgement"),
    "away": N_("out of office"),
    "bounced": N_("bounced"),
    "invalid_endpoint": N_("invalid address or number"),
    "provider_failure": N_("provider failure (our side)"),
    "unknown": N_("unknown (interrupted while sending)"),
    "manual": N_("recorded by a coordinator"),
    "self_reported": N_("self-reported"),
    "cancelled": N_("cancelled (never sent)"),
    "busy": N_("line busy"),
    "no_answer": N_("not answered"),
    "blocked": N_("number blocked our messages"),
    "no_record": N_("no coordinator record"),
    "template_error": N_("message could not be prepared (our side)"),
    "aborted": N_("test called off before an answer"),
}

METHODS = {
    "link": N_("confirmation link"),
    "email-reply": N_("reply to the e-mail"),
    "keypress": N_("key pressed on the call"),
    "sms-reply": N_("SMS reply with the code"),
    "video-join": N_("joined the video room"),
    "self-reported": N_("said they joined the video room"),
    "cap-ack": N_("CAP acknowledgement"),
    "manual": N_("recorded by a coordinator"),
}

VERDICTS = {
    "pass": N_("pass"),
    "fail": N_("fail"),
    "pending": N_("pending"),
    "not_tested": N_("not tested (our side failed)"),
    "no_endpoint": N_("no endpoint"),
    "cancelled": N_("cancelled"),
    "aborted": N_("called off"),
}

RUN_STATUSES = {
    "planned": N_("planned"),
    "running": N_("running"),
    "completed": N_("completed"),
    "aborted": N_("called off"),
    "missed": N_("missed"),
}

TRIGGERS = {"schedule": N_("scheduled"), "manual": N_("started by hand"),
            "channel-test": N_("channel test of one endpoint (not counted in reports)")}

DELIVERY = {"delivered": N_("delivered"), "ringing": N_("ringing")}

EVENTS = {
    "run.planned": N_("test planned"),
    "run.announced": N_("test announced"),
    "run.started": N_("test started"),
    "run.completed": N_("test completed"),
    "run.aborted": N_("test called off"),
    "run.missed": N_("test missed"),
    "run.refused": N_("test not started: a channel has no provider"),
    "run.gap": N_("nothing to ping"),
    "ping.planned": N_("attempt planned"),
    "ping.dispatching": N_("handed to the provider"),
    "ping.sent": N_("sent"),
    "ping.delivered": N_("delivered or ringing"),
    "ping.answered": N_("call picked up"),
    "ping.acked": N_("acknowledged"),
    "ping.retry": N_("retry planned"),
    "ping.escalated": N_("escalated"),
    "ping.unknown": N_("interrupted while sending"),
    "ping.cancelled": N_("cancelled"),
    "ping.settled": N_("outcome recorded"),
    "ping.answer_after_close": N_("answered after the test closed"),
    "ping.reply_refused": N_("SMS reply with a wrong code"),
    "endpoint.status": N_("endpoint flagged"),
    "endpoint.verified": N_("endpoint proven reachable"),
    "report.signed": N_("report signed"),
    "endpoint.edited": N_("endpoint edited"),
    "directory.imported": N_("directory imported"),
    "correction.filed": N_("new contact details sent by a duty officer"),
    "correction.approved": N_("contact details correction approved"),
    "correction.rejected": N_("contact details correction rejected"),
    "user.login": N_("signed in"),
    "user.login_failed": N_("failed sign-in"),
    "user.logout": N_("signed out"),
    "schedule.paused": N_("schedule paused"),
    "schedule.resumed": N_("schedule resumed"),
    "playbook.uploaded": N_("playbook uploaded"),
    "token.created": N_("API token created"),
    "token.revoked": N_("API token revoked"),
    "feed.created": N_("calendar link created"),
    "feed.revoked": N_("calendar link revoked"),
}

ENDPOINT_STATUSES = {"active": N_("active"), "suspect": N_("suspect"), "invalid": N_("invalid"),
                     "blocked": N_("blocked")}

_TABLES = {
    "channel": CHANNELS, "outcome": OUTCOMES, "method": METHODS, "verdict": VERDICTS, "run_status": RUN_STATUSES,
    "trigger": TRIGGERS, "delivery": DELIVERY, "event": EVENTS, "endpoint_status": ENDPOINT_STATUSES,
}


def name_of(what: str, value: str | None, t: _Translate) -> str:
    """``value`` (an identifier of kind ``what``) in the reader's words; ``manual:radio`` is a
    manual method. Unknown values (a provider's own method name) are shown as they are."""
    if not value:
        return "–"
    table = _TABLES[what]
    key = value.split(":", 1)[0] if what == "method" and value.startswith("manual") else value
    return t(table[key]) if key in table else value


__all__ = ["CHANNELS", "ENDPOINT_STATUSES", "EVENTS", "METHODS", "OUTCOMES", "VERDICTS", "name_of"]
