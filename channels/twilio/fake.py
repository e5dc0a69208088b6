"""A local fake of Twilio's REST API, for the tests and the demo (CONVENTIONS.md rule 13).

It speaks Twilio's wire protocol, so our real code (the SDK, our HTTP client, the webhooks)
talks to it unchanged: ``POST /2010-04-01/Accounts/{Sid}/Calls.json`` and ``Messages.json``
with Twilio's form fields, HTTP basic auth with the account SID and auth token, JSON answers,
Twilio's error bodies (``code``, ``message``, ``more_info``, ``status``), and the list and
fetch endpoints (``GET Calls.json?To=...``) that recovery reads. Then it plays the far side
(``channels.twilio.fake_play``): rings, answers, presses keys, goes to voicemail, is busy,
replies to SMS, sends STOP, all by calling our webhooks with valid signatures.

    fake = FakeTwilio(clock, script=FakeScript(...), callbacks=httpx_client_to_our_web_app)
    fake.add_account("AC...", "token", numbers={"+3225550199"}, sms_url=".../hooks/twilio/sms/inbound")
    TwilioVoiceChannel(account, settings, clock, http_client=fake.client())   # in process
    base_url = fake.serve()                                                   # or on loopback
"""
from __future__ import annotations

import base64
import socket
import threading
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

import httpx
import phonenumbers
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from channels.twilio.fake_play import Player
from channels.twilio.fake_script import FakeScript
from channels.twilio.fake_state import API_VERSION, FakeAccount, FakeCall, FakeMessage, new_sid, twilio_error
from commtest.clock import Clock, ensure_utc

__all__ = ["FAKE_BASE", "FakeTwilio", "in_process_client"]

FAKE_BASE = "http://twilio.fake"  # the in-process client's base URL (never resolved)
_EVENTS = {"initiated", "ringing", "answered", "completed"}
_DETECTION = {"Enable", "DetectMessageEnd"}


def _error(status: int, code: int, message: str) -> JSONResponse:
    return JSONResponse(twilio_error(status, code, message), status_code=status)


class _Refused(Exception):
    def __init__(self, status: int, code: int, message: str) -> None:
        super().__init__(message)
        self.response = _error(status, code, message)


class FakeTwilio:
    def __init__(self, clock: Clock, *, script: FakeScript | None = None, callbacks: httpx.Client | None = None) -> None:
        self.clock = clock
        self.script = script or FakeScript()
        self.player = Player(clock, callbacks)
        self.accounts: dict[str, FakeAccount] = {}
        self.calls: list[FakeCall] = []
        self.messages: list[FakeMessage] = []
        self.requests: list[tuple[str, str, dict[str, list[str]]]] = []  # (method, path, form or query)
        self._counts: dict[tuple[str, str], int] = {}
        self._lock = threading.RLock()
        self._server: Any = None
        self._stop = threading.Event()
        self.app = self._build_app()

    # -- set-up --------------------------------------------------------------------
    def add_account(self, sid: str, auth_token: str, numbers: set[str] | frozenset[str], *,
                    sms_url: str | None = None, calls_per_second: float = 1.0) -> FakeAccount:
        account = FakeAccount(sid, auth_token, frozenset(numbers), sms_url, calls_per_second)
        self.accounts[sid] = account
        return account

    def fail_account(self, sid: str, status: int = 503, code: int = 20503) -> None:
        """Every create of this account answers an error from now on (an outage, a suspension)."""
        self.accounts[sid].failing = (status, code)

    def client(self) -> httpx.Client:
        """An httpx client that reaches this fake in process (for ``TwilioHttp(client=...)``)."""
        return in_process_client(self.app, FAKE_BASE)

    def officer_texts(self, their_number: str, our_number: str, text: str) -> None:
        """An officer sends ``text`` to one of our numbers now, unprompted (START after a STOP)."""
        account = next((a for a in self.accounts.values() if our_number in a.numbers), None)
        if account is None:
            raise ValueError(f"{our_number} is not a number of any account of this fake")
        self.player.receive(account, our_number, their_number, text)

    # -- time ------------------------------------------------------------------------
    def advance(self, seconds: float) -> int:
        return self.player.advance(seconds)

    def run_due(self) -> int:
        return self.player.run_due()

    # -- what happened -----------------------------------------------------------------
    def calls_to(self, number: str) -> list[FakeCall]:
        with self._lock:
            return [c for c in self.calls if c.to == number]

    def messages_to(self, number: str) -> list[FakeMessage]:
        with self._lock:
            return [m for m in self.messages if m.to == number]

    def creates(self) -> list[tuple[str, dict[str, list[str]]]]:
        """Every create request received: (Calls|Messages, form fields)."""
        with self._lock:
            return [(p.rsplit("/", 1)[-1].removesuffix(".json"), f) for m, p, f in self.requests if m == "POST"]

    # -- on loopback (the demo, the crash tests) -----------------------------------------
    def serve(self, host: str = "127.0.0.1", port: int = 0, *, tick_s: float = 0.02, play: bool = True) -> str:
        """Serve the API on ``host:port`` (0: a free port) and play due events in the background
        (``play=False``: the caller plays them with ``advance``, on a frozen clock)."""
        import uvicorn

        if port == 0:
            with socket.socket() as sock:
                sock.bind((host, 0))
                port = int(sock.getsockname()[1])
        self._server = uvicorn.Server(uvicorn.Config(self.app, host=host, port=port, log_level="warning",
                                                     access_log=False))
        threading.Thread(target=self._server.run, name="fake-twilio", daemon=True).start()
        if play:
            threading.Thread(target=self._loop, args=(tick_s,), name="fake-twilio-play", daemon=True).start()
        deadline = time.monotonic() + 10
        while not self._server.started and time.monotonic() < deadline:
            time.sleep(0.01)
        return f"http://{host}:{port}"

    def _loop(self, tick_s: float) -> None:
        while not self._stop.wait(tick_s):
            self.player.run_due()

    def stop(self) -> None:
        self._stop.set()
        if self._server is not None:
            self._server.should_exit = True

    # -- the REST API ------------------------------------------------------------------
    def _build_app(self) -> Starlette:
        base = f"/{API_VERSION}/Accounts/{{account}}"
        return Starlette(routes=[
            Route(f"{base}/Calls.json", self._calls, methods=["GET", "POST"]),
            Route(f"{base}/Calls/{{sid}}.json", self._call, methods=["GET"]),
            Route(f"{base}/Messages.json", self._messages, methods=["GET", "POST"]),
            Route(f"{base}/Messages/{{sid}}.json", self._message, methods=["GET"]),
        ])

    def _account(self, request: Request) -> FakeAccount:
        header = request.headers.get("authorization", "")
        try:
            user, _, password = base64.b64decode(header.removeprefix("Basic ")).decode().partition(":")
        except ValueError:
            user = password = ""
        account = self.accounts.get(user)
        if not header.startswith("Basic ") or account is None or account.auth_token != password:
            raise _Refused(401, 20003, "Authenticate")
        if request.path_params["account"] != account.sid:
            raise _Refused(404, 20404, f"The requested resource {request.url.path} was not found")
        return account

    async def _form(self, request: Request) -> dict[str, list[str]]:
        fields: dict[str, list[str]] = {}
        source = (await request.form()).multi_items() if request.method == "POST" else request.query_params.multi_items()
        for key, value in source:
            fields.setdefault(key, []).append(str(value))
        with self._lock:
            self.requests.append((request.method, request.url.path, fields))
        return fields

    async def _guarded(self, request: Request, handler: Callable[[FakeAccount, dict[str, list[str]]], JSONResponse]
                       ) -> JSONResponse:
        try:
            account = self._account(request)
            fields = await self._form(request)
            with self._lock:
                return handler(account, fields)
        except _Refused as refused:
            return refused.response

    async def _calls(self, request: Request) -> JSONResponse:
        if request.method == "GET":
            return await self._guarded(request, lambda a, f: self._list(a, f, "calls", self.calls, "StartTime"))
        return await self._guarded(request, self._create_call)

    async def _messages(self, request: Request) -> JSONResponse:
        if request.method == "GET":
            return await self._guarded(request, lambda a, f: self._list(a, f, "messages", self.messages, "DateSent"))
        return await self._guarded(request, self._create_message)

    async def _call(self, request: Request) -> JSONResponse:
        return await self._guarded(request, lambda a, f: self._fetch(a, self.calls, request.path_params["sid"], "Call"))

    async def _message(self, request: Request) -> JSONResponse:
        return await self._guarded(request, lambda a, f: self._fetch(a, self.messages, request.path_params["sid"],
                                                                     "Message"))

    def _nth(self, kind: str, number: str) -> int:
        n = self._counts.get((kind, number), 0)
        self._counts[(kind, number)] = n + 1
        return n

    def _create_call(self, account: FakeAccount, fields: dict[str, list[str]]) -> JSONResponse:
        def one(name: str) -> str:
            return (fields.get(name) or [""])[0]

        to, from_, twiml = one("To"), one("From"), one("Twiml")
        if not to:
            raise _Refused(400, 21201, "No 'To' number is specified")
        if not from_:
            raise _Refused(400, 21213, "No 'From' number is specified")
        if from_ not in account.numbers:
            raise _Refused(400, 21210, f"The source phone number provided, {from_}, is not yet verified for your account")
        if not (twiml or one("Url") or one("ApplicationSid")):
            raise _Refused(400, 21205, "Url parameter is required.")
        if len(twiml) > 4000:
            raise _Refused(400, 32018, "Twiml size exceeded maximum allowed value of 4000 characters")
        if one("AsyncAmd") not in ("", "true", "false"):
            raise _Refused(400, 20001, f"AsyncAmd must be 'true' or 'false', not {one('AsyncAmd')!r}")
        if one("MachineDetection") and one("MachineDetection") not in _DETECTION:
            raise _Refused(400, 20001, f"Invalid MachineDetection {one('MachineDetection')!r}")
        if set(fields.get("StatusCallbackEvent", [])) - _EVENTS:
            raise _Refused(400, 20001, "Invalid StatusCallbackEvent")
        if account.failing:
            raise _Refused(account.failing[0], account.failing[1], "Service unavailable (scripted outage)")
        if to in self.script.unknown_numbers or not _possible(to):
            raise _Refused(400, 21211, f"Invalid 'To' Phone Number: {to}")
        script = self.script.call_for(to, self._nth("call", to))
        if script.api_error:
            raise _Refused(script.api_error[0], script.api_error[1], "Scripted refusal")
        call = FakeCall(sid=new_sid("CA"), account_sid=account.sid, to=to, from_=from_, params=fields,
                        created_at=self.clock.now())
        self.calls.append(call)
        self.player.start_call(account, call, script)
        return JSONResponse(call.resource(), status_code=201)

    def _create_message(self, account: FakeAccount, fields: dict[str, list[str]]) -> JSONResponse:
        def one(name: str) -> str:
            return (fields.get(name) or [""])[0]

        to, from_, body = one("To"), one("From"), one("Body")
        service = one("MessagingServiceSid")
        if not to:
            raise _Refused(400, 21604, "A 'To' phone number is required.")
        if not from_ and not service:
            raise _Refused(400, 21603, "A 'From' phone number is required.")
        if from_ and from_ not in account.numbers:
            raise _Refused(400, 21606, f"The From phone number {from_} is not a valid, SMS-capable inbound phone number "
                                       "or short code for your account.")
        if not body:
            raise _Refused(400, 21602, "Message body is required.")
        if len(body) > 1600:
            raise _Refused(400, 21617, "The concatenated message body exceeds the 1600 character limit.")
        validity = one("ValidityPeriod")
        if validity and not (validity.isdigit() and 1 <= int(validity) <= 36000):
            raise _Refused(400, 20001, "ValidityPeriod must be an integer between 1 and 36000")
        if account.failing:
            raise _Refused(account.failing[0], account.failing[1], "Service unavailable (scripted outage)")
        sender = from_ or min(account.numbers)
        if (sender, to) in account.opted_out:
            raise _Refused(400, 21610, "Attempt to send to unsubscribed recipient")
        if to in self.script.unknown_numbers or not _possible(to):
            raise _Refused(400, 21211, f"Invalid 'To' Phone Number: {to}")
        if to in self.script.landlines:
            raise _Refused(400, 21614, f"'To' number {to} is not a valid mobile number")
        script = self.script.sms_for(to, self._nth("sms", to))
        if script.api_error:
            raise _Refused(script.api_error[0], script.api_error[1], "Scripted refusal")
        message = FakeMessage(sid=new_sid("SM"), account_sid=account.sid, to=to, from_=sender, body=body,
                              params=fields, created_at=self.clock.now())
        self.messages.append(message)
        self.player.start_message(account, message, script)
        return JSONResponse(message.resource(), status_code=201)

    def _list(self, account: FakeAccount, fields: dict[str, list[str]], key: str, rows: list[Any],
              time_field: str) -> JSONResponse:
        def one(name: str) -> str:
            return (fields.get(name) or [""])[0]

        found = [r for r in rows if r.account_sid == account.sid]
        for name, attr in (("To", "to"), ("From", "from_"), ("Status", "status")):
            if one(name):
                found = [r for r in found if getattr(r, attr) == one(name)]
        after, before = _when(one(f"{time_field}>")), _when(one(f"{time_field}<"))
        if after:
            found = [r for r in found if r.created_at >= after]
        if before:
            found = [r for r in found if r.created_at < before]
        found.sort(key=lambda r: r.created_at, reverse=True)  # newest first, as Twilio lists
        size = max(1, min(1000, int(one("PageSize") or 50)))
        page = max(0, int(one("Page") or 0))
        chunk = found[page * size:(page + 1) * size]
        uri = f"/{API_VERSION}/Accounts/{account.sid}/{key.title()}.json"
        more = (page + 1) * size < len(found)
        return JSONResponse({
            key: [r.resource() for r in chunk], "end": page * size + max(0, len(chunk) - 1),
            "first_page_uri": f"{uri}?PageSize={size}&Page=0",
            "next_page_uri": f"{uri}?PageSize={size}&Page={page + 1}" if more else None,
            "page": page, "page_size": size,
            "previous_page_uri": f"{uri}?PageSize={size}&Page={page - 1}" if page else None,
            "start": page * size, "uri": f"{uri}?PageSize={size}&Page={page}",
        })

    @staticmethod
    def _fetch(account: FakeAccount, rows: list[Any], sid: str, what: str) -> JSONResponse:
        for row in rows:
            if row.sid == sid and row.account_sid == account.sid:
                return JSONResponse(row.resource())
        raise _Refused(404, 20404, f"The requested resource /{API_VERSION}/Accounts/{account.sid}/{what}s/{sid}.json "
                                   "was not found")


def in_process_client(app: Any, base_url: str) -> httpx.Client:
    """An httpx client that calls an ASGI app in this process (Starlette's TestClient, which
    has no timeouts: they are dropped instead of warned about)."""
    from starlette.testclient import TestClient

    class _InProcess(TestClient):
        def request(self, method: str, url: Any, **kwargs: Any) -> httpx.Response:
            kwargs.pop("timeout", None)
            answer: httpx.Response = super().request(method, url, **kwargs)
            return answer

    return _InProcess(app, base_url=base_url, raise_server_exceptions=True)


def _possible(number: str) -> bool:
    try:
        return phonenumbers.is_possible_number(phonenumbers.parse(number, None))
    except phonenumbers.NumberParseException:
        return False


def _when(text: str) -> datetime | None:
    if not text:
        return None
    for fmt in ("%Y-%m-%dT%H:%M:%SZ", "%Y-%m-%d"):
        try:
            return ensure_utc(datetime.strptime(text, fmt))
        except ValueError:
            continue
    return None
