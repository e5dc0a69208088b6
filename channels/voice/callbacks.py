"""What Twilio's call webhooks say, as ``ChannelReport``s (the web app applies them).

Status callbacks (``StatusCallbackEvent`` initiated, ringing, answered, completed): ``CallStatus``
``ringing`` starts the response time (Twilio queues calls, so the API call's time says nothing);
``in-progress`` is an answer by someone or something (never an acknowledgement: only the key
press is); ``completed`` carries how the call ended: ``busy``, ``no-answer``, ``failed``,
``canceled`` or ``completed``. A plain ``completed`` changes nothing: an answered call that
nobody confirmed ends at its deadline like any silence.

Asynchronous answering-machine detection (``AsyncAmdStatusCallback``): ``AnsweredBy``
``machine_*`` is ``voicemail`` (never an acknowledgement), ``fax`` a wrong endpoint, ``human``
and ``unknown`` change nothing.
"""
from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from email.utils import parsedate_to_datetime

from channels.base import ChannelReport
from commtest.clock import ensure_utc

__all__ = ["amd_report", "call_status_report", "provider_time"]

# A SIP answer that says the number does not exist (the endpoint is wrong, not our side).
_NO_SUCH_NUMBER = {"404", "410", "484", "604"}


def provider_time(form: Mapping[str, str], now: datetime) -> datetime:
    """When Twilio says it happened (``Timestamp``, RFC 2822), within a day before now; else now."""
    text = form.get("Timestamp", "")
    try:
        at = ensure_utc(parsedate_to_datetime(text)) if text else now
    except (TypeError, ValueError, IndexError):
        return now
    return at if now - timedelta(days=1) <= at <= now else now


def call_status_report(form: Mapping[str, str], ping_id: int, now: datetime) -> ChannelReport | None:
    status = form.get("CallStatus", "")
    sid = form.get("CallSid") or None
    at = provider_time(form, now)
    common = {"ping_id": ping_id, "provider_ref": sid, "extra": {"call_status": status[:32]}}
    if status == "ringing":
        return ChannelReport("ringing", at, **common)  # type: ignore[arg-type]
    if status == "in-progress":
        return ChannelReport("answered", at, by=form.get("AnsweredBy") or None, **common)  # type: ignore[arg-type]
    if status == "busy":
        return ChannelReport("busy", at, detail="the line was busy", **common)  # type: ignore[arg-type]
    if status == "no-answer":
        return ChannelReport("no_answer", at, detail="nobody picked up", **common)  # type: ignore[arg-type]
    if status in ("failed", "canceled"):
        sip = form.get("SipResponseCode", "")
        permanent = status == "failed" and sip in _NO_SUCH_NUMBER
        detail = f"the call {status}" + (f" (SIP {sip})" if sip else "")
        return ChannelReport("failed", at, detail=detail, permanent=permanent, **common)  # type: ignore[arg-type]
    return None  # queued, initiated, completed: nothing to record


def amd_report(form: Mapping[str, str], ping_id: int, now: datetime) -> ChannelReport | None:
    answered_by = form.get("AnsweredBy", "")
    sid = form.get("CallSid") or None
    if answered_by.startswith("machine"):
        return ChannelReport("voicemail", now, ping_id=ping_id, provider_ref=sid,
                             detail=f"an answering machine picked up (answering-machine detection: {answered_by[:40]})")
    if answered_by == "fax":
        return ChannelReport("failed", now, ping_id=ping_id, provider_ref=sid, permanent=True,
                             detail="a fax machine answered: this is not a voice number")
    return None
