"""The fake's far side: calls that ring, are answered, hear our TwiML and get keys pressed;
SMS that are delivered and answered. Every webhook it makes is signed as Twilio signs it
(``RequestValidator.compute_signature`` with the account's auth token) and carries Twilio's
parameters; the TwiML our webhooks answer is executed as Twilio would.

Time is the injected clock's: ``run_due`` plays what is due now (the demo's background
thread calls it), ``advance`` walks a frozen clock event by event (the tests), so each
callback happens at its own exact moment.
"""
from __future__ import annotations

import heapq
import itertools
import logging
import re
import threading
import xml.etree.ElementTree as ET
from collections.abc import Callable
from datetime import datetime, timedelta
from functools import partial
from typing import Any

import httpx

from channels.twilio.fake_script import CallScript, SmsScript
from channels.twilio.fake_state import API_VERSION, FakeAccount, FakeCall, FakeMessage, new_sid, rfc2822
from channels.twilio.signature import SIGNATURE_HEADER, sign
from commtest.clock import Clock

__all__ = ["Player"]

log = logging.getLogger(__name__)

_CODE = re.compile(r"(?<!\d)(\d{6})(?!\d)")
_SPEECH_CHARS_PER_S = 15.0
_MAX_STEPS = 200  # a TwiML loop that never ends is cut here
FINAL = ("completed", "busy", "no-answer", "failed", "canceled")
UNSUBSCRIBED = "You have successfully been unsubscribed. You will not receive any more messages from this number. " \
               "Reply START to resubscribe."
RESUBSCRIBED = "You have successfully been re-subscribed to messages from this number. Reply HELP for help. " \
               "Reply STOP to unsubscribe. Msg&Data Rates May Apply."
# Twilio's default opt-out and opt-in keywords (a message of that one word, any case).
OPT_OUT = frozenset({"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "OPTOUT", "REVOKE"})
OPT_IN = frozenset({"START", "YES", "UNSTOP"})


class Player:
    def __init__(self, clock: Clock, callbacks: httpx.Client | None = None) -> None:
        self.clock = clock
        self.callbacks = callbacks or httpx.Client(timeout=10)
        self._heap: list[tuple[datetime, int, Callable[[], None]]] = []
        self._seq = itertools.count()
        self._lock = threading.RLock()
        self.webhook_log: list[tuple[str, int]] = []  # (url path, HTTP status) of every webhook made
        self.sent_messages: list[FakeMessage] = []  # answers our webhooks asked Twilio to send
        self.inbound: list[FakeMessage] = []

    # -- the timeline --------------------------------------------------------------
    def at(self, when: datetime, action: Callable[[], None]) -> None:
        with self._lock:
            heapq.heappush(self._heap, (when, next(self._seq), action))

    def next_due(self) -> datetime | None:
        with self._lock:
            return self._heap[0][0] if self._heap else None

    def run_due(self, now: datetime | None = None) -> int:
        """Play every event due by ``now``, in time order (events may add events)."""
        done = 0
        while True:
            with self._lock:
                limit = now or self.clock.now()
                if not self._heap or self._heap[0][0] > limit:
                    return done
                _, _, action = heapq.heappop(self._heap)
            try:
                action()
            except Exception:  # noqa: BLE001 - one broken event never stops the fake
                log.exception("fake Twilio: an event failed")
            done += 1

    def advance(self, seconds: float) -> int:
        """For a frozen clock (``set``): move it event by event up to now + ``seconds``."""
        target = self.clock.now() + timedelta(seconds=seconds)
        setter: Any = self.clock.set  # type: ignore[attr-defined]
        done = 0
        while (due := self.next_due()) is not None and due <= target:
            if due > self.clock.now():
                setter(due)
            done += self.run_due(due)
        setter(max(target, self.clock.now()))
        return done

    # -- webhooks ------------------------------------------------------------------
    def post(self, account: FakeAccount, url: str, params: dict[str, str]) -> httpx.Response | None:
        headers = {SIGNATURE_HEADER: sign(account.auth_token, url, params),
                   "User-Agent": "TwilioProxy/1.1", "I-Twilio-Idempotency-Token": new_sid("ID")}
        try:
            answer = self.callbacks.post(url, data=params, headers=headers)
        except httpx.HTTPError as exc:
            log.warning("fake Twilio: webhook %s failed: %s", url, exc)
            self.webhook_log.append((httpx.URL(url).path, 0))
            return None
        self.webhook_log.append((httpx.URL(url).path, answer.status_code))
        return answer

    # -- calls ---------------------------------------------------------------------
    def start_call(self, account: FakeAccount, call: FakeCall, script: CallScript) -> None:
        """Twilio queues calls at the account's calls per second: dialling starts at its slot."""
        slot = call.created_at
        if account.last_dial_at is not None:
            slot = max(slot, account.last_dial_at + timedelta(seconds=1.0 / account.calls_per_second))
        account.last_dial_at = slot
        self.at(slot, lambda: self._dial(account, call, script))

    def _status(self, account: FakeAccount, call: FakeCall, event: str, **extra: str) -> None:
        url = call.param("StatusCallback")
        events = call.params.get("StatusCallbackEvent") or ["completed"]
        call.log.append((self.clock.now(), call.status))
        if not url or event not in events:
            return
        params = {**self._call_params(account, call), "CallbackSource": "call-progress-events",
                  "SequenceNumber": str(call.sequence), "Timestamp": rfc2822(self.clock.now()) or "", **extra}
        call.sequence += 1
        self.post(account, url, params)

    @staticmethod
    def _call_params(account: FakeAccount, call: FakeCall) -> dict[str, str]:
        return {"AccountSid": account.sid, "ApiVersion": API_VERSION, "CallSid": call.sid, "CallStatus": call.status,
                "Called": call.to, "Caller": call.from_, "Direction": "outbound-api", "From": call.from_,
                "To": call.to}

    def _dial(self, account: FakeAccount, call: FakeCall, script: CallScript) -> None:
        now = self.clock.now()
        call.status, call.started_at = "initiated", now
        self._status(account, call, "initiated")
        if script.answer in ("busy", "failed"):
            sip = script.sip or ("486" if script.answer == "busy" else "500")
            self.at(now + timedelta(seconds=script.end_after), lambda: self._end(account, call, script.answer, sip))
            return
        self.at(now + timedelta(seconds=script.ring_after), lambda: self._ringing(account, call))
        ring_limit = float(call.param("Timeout", "60") or 60)
        if script.answer == "no-answer" or script.answer_after - script.ring_after > ring_limit:
            self.at(now + timedelta(seconds=script.ring_after + ring_limit),
                    lambda: self._end(account, call, "no-answer", "487"))
        else:
            self.at(now + timedelta(seconds=script.answer_after), lambda: self._answered(account, call, script))

    def _ringing(self, account: FakeAccount, call: FakeCall) -> None:
        if call.status in FINAL:
            return
        call.status = "ringing"
        self._status(account, call, "ringing")

    def _answered(self, account: FakeAccount, call: FakeCall, script: CallScript) -> None:
        if call.status in FINAL:
            return
        now = self.clock.now()
        call.status = "in-progress"
        self._status(account, call, "answered")
        detection = call.param("MachineDetection")
        if script.answer in ("machine", "fax"):
            verdict = "fax" if script.answer == "fax" else (
                "machine_end_beep" if detection == "DetectMessageEnd" else "machine_start")
        else:
            verdict = "human"
        if detection and call.param("AsyncAmd") == "true" and call.param("AsyncAmdStatusCallback"):
            self.at(now + timedelta(seconds=script.amd_after), lambda: self._amd(account, call, verdict))
        keys = list(script.keys) if script.answer == "person" else []
        self._execute(account, call, call.param("Twiml"), now, keys)

    def _amd(self, account: FakeAccount, call: FakeCall, verdict: str) -> None:
        call.answered_by = verdict
        params = {"AccountSid": account.sid, "CallSid": call.sid, "AnsweredBy": verdict,
                  "MachineDetectionDuration": "2800"}
        self.post(account, call.param("AsyncAmdStatusCallback"), params)

    def _execute(self, account: FakeAccount, call: FakeCall, twiml: str, start: datetime,
                 keys: list[tuple[str, float]], steps: int = 0) -> None:
        """Run a TwiML document from ``start``: what it says is recorded, a key press posts the
        ``<Gather>`` action and its answer replaces the document, the end hangs up."""
        try:
            verbs = list(ET.fromstring(twiml.split("?>", 1)[-1].strip() or "<Response/>"))
        except ET.ParseError:
            error = ET.Element("Say")
            error.text = "An application error has occurred. Goodbye."
            verbs = [error]
        at = start
        for verb in verbs:
            if verb.tag == "Say":
                at = self._say(call, verb, at)
            elif verb.tag == "Pause":
                at += timedelta(seconds=float(verb.get("length", "1")))
            elif verb.tag == "Hangup":
                break
            elif verb.tag == "Gather":
                began = at
                for child in verb:
                    if child.tag == "Say":
                        at = self._say(call, child, at)
                if keys and steps < _MAX_STEPS:
                    digit, after = keys.pop(0)
                    self.at(began + timedelta(seconds=after),
                            partial(self._press, account, call, verb.get("action", ""), digit, keys, steps))
                    return
                at += timedelta(seconds=float(verb.get("timeout", "5")))
        self.at(at, lambda: self._end(account, call, "completed", "200"))

    @staticmethod
    def _say(call: FakeCall, verb: ET.Element, at: datetime) -> datetime:
        text = (verb.text or "").strip()
        call.spoken.append((verb.get("language", ""), verb.get("voice", ""), text))
        return at + timedelta(seconds=len(text) / _SPEECH_CHARS_PER_S)

    def _press(self, account: FakeAccount, call: FakeCall, action: str, digit: str,
               keys: list[tuple[str, float]], steps: int) -> None:
        if call.status in FINAL:
            return
        call.digits.append(digit)
        params = {**self._call_params(account, call), "Digits": digit, "FinishedOnKey": "", "msg": "Gather End"}
        answer = self.post(account, action, params) if action else None
        if answer is None or answer.status_code >= 300 or "<Response" not in answer.text:
            twiml = "<Response><Say>An application error has occurred. Goodbye.</Say></Response>"
        else:
            twiml = answer.text
        self._execute(account, call, twiml, self.clock.now(), keys, steps + 1)

    def _end(self, account: FakeAccount, call: FakeCall, status: str, sip: str) -> None:
        if call.status in FINAL:
            return
        call.status, call.ended_at = status, self.clock.now()
        duration = int((call.ended_at - (call.started_at or call.ended_at)).total_seconds())
        self._status(account, call, "completed", CallDuration=str(duration), SipResponseCode=sip)

    # -- messages ------------------------------------------------------------------
    def start_message(self, account: FakeAccount, message: FakeMessage, script: SmsScript) -> None:
        now = message.created_at
        self.at(now + timedelta(seconds=min(0.5, script.deliver_after)), lambda: self._msg_status(account, message, "sent"))
        end = now + timedelta(seconds=script.deliver_after)
        if script.delivery != "delivered":
            self.at(end, lambda: self._msg_status(account, message, script.delivery, script.error_code))
            return
        self.at(end, lambda: self._msg_status(account, message, "delivered"))
        code = _CODE.search(message.body)
        for text, after in script.replies:
            reply = text.replace("{code}", code.group(1) if code else "")
            self.at(end + timedelta(seconds=after), partial(self._reply, account, message, reply))

    def _msg_status(self, account: FakeAccount, message: FakeMessage, status: str, error: int | None = None) -> None:
        message.status = status
        if status == "sent":
            message.sent_at = self.clock.now()
        message.error_code = error
        url = message.param("StatusCallback")
        if not url:
            return
        params = {"AccountSid": account.sid, "ApiVersion": API_VERSION, "From": message.from_,
                  "MessageSid": message.sid, "MessageStatus": status, "SmsSid": message.sid, "SmsStatus": status,
                  "To": message.to}
        if error:
            params["ErrorCode"] = str(error)
        self.post(account, url, params)

    def _reply(self, account: FakeAccount, original: FakeMessage, text: str) -> None:
        """The officer answers from the number we wrote to, to the number we wrote from."""
        self.receive(account, original.from_, original.to, text)

    def receive(self, account: FakeAccount, ours: str, theirs: str, text: str) -> None:
        """A message from ``theirs`` to our number ``ours``. Twilio handles its opt-out and
        opt-in keywords itself (it answers them, and refuses or resumes our messages to that
        number), then passes the message on to the number's webhook with ``OptOutType``."""
        inbound = FakeMessage(sid=new_sid("SM"), account_sid=account.sid, to=ours, from_=theirs, body=text,
                              params={}, created_at=self.clock.now(), direction="inbound", status="received")
        self.inbound.append(inbound)
        word = text.strip().upper()
        opt_type = "STOP" if word in OPT_OUT else "START" if word in OPT_IN else ""
        if opt_type == "STOP":
            account.opted_out.add((ours, theirs))
            self._answer(account, ours, theirs, UNSUBSCRIBED)  # Twilio's own answer to STOP
        elif opt_type == "START":
            account.opted_out.discard((ours, theirs))
            self._answer(account, ours, theirs, RESUBSCRIBED)
        if not account.sms_url:
            return
        params = {"AccountSid": account.sid, "ApiVersion": API_VERSION, "Body": text, "From": theirs,
                  "FromCountry": "", "MessageSid": inbound.sid, "NumMedia": "0", "NumSegments": "1",
                  "SmsMessageSid": inbound.sid, "SmsSid": inbound.sid, "SmsStatus": "received", "To": ours,
                  "ToCountry": ""}
        if opt_type:
            params["OptOutType"] = opt_type
        answer = self.post(account, account.sms_url, params)
        if answer is None or answer.status_code >= 300 or opt_type:
            return
        try:
            root = ET.fromstring(answer.text.split("?>", 1)[-1].strip() or "<Response/>")
        except ET.ParseError:
            return
        for node in root.iter("Message"):
            self._answer(account, ours, theirs, (node.text or "").strip())

    def _answer(self, account: FakeAccount, ours: str, theirs: str, text: str) -> None:
        self.sent_messages.append(FakeMessage(sid=new_sid("SM"), account_sid=account.sid, to=theirs, from_=ours,
                                              body=text, params={}, created_at=self.clock.now(),
                                              direction="outbound-reply", status="delivered"))
