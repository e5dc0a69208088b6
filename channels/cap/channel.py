"""``cap.http``: a CAP 1.2 test alert POSTed to a partner platform's endpoint.

The ping's address is the partner's CAP endpoint as the directory has it; the partner is
the entry of ``COMMTEST_CAP_PARTNERS`` with that ``endpoint``. The POST proves itself the
way the partner asks: our HMAC header (default), a bearer token or basic auth with the
shared secret, and/or mutual TLS (``client_cert``/``client_key``). The partner's HTTP
answer is only the hand-over (``delivered``); the acknowledgement is its CAP Ack, which
arrives at ``/hooks/cap/{partner}``.

What the partner's answer means: 2xx taken; 404/410 no CAP inbox at that address (the
endpoint is wrong); 401/403 our credentials (our side); other answers and a refused
connection are temporary. A timeout after the alert went out is ambiguous: it may have
arrived, so it is never sent again (outcome ``unknown``).
"""
from __future__ import annotations

import logging
import threading
from datetime import datetime

import httpx

from channels.base import ChannelReport, OutgoingPing, SendResult
from channels.cap.message import alert_identifier, build_alert
from channels.cap.signing import HEADER, sign
from commtest.clock import Clock
from commtest.errors import ChannelError
from commtest.masking import mask_address
from commtest.settings import ENV_PREFIX, CapPartner, Settings

log = logging.getLogger(__name__)
_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout, httpx.UnsupportedProtocol,
             httpx.InvalidURL)


def same_endpoint(a: str, b: str) -> bool:
    return a.rstrip("/") == b.rstrip("/")


class CapChannel:
    kind = "cap"
    provider = "http"

    def __init__(self, settings: Settings, clock: Clock, *, client: httpx.Client | None = None,
                 simulated: bool = False) -> None:
        self.settings = settings
        self.clock = clock
        self.simulated = simulated  # True when the partners are local fakes
        self._shared = client  # one client for every partner (tests: a MockTransport)
        self._clients: dict[str, httpx.Client] = {}
        self._lock = threading.Lock()

    @classmethod
    def create(cls, kind: str, settings: Settings, clock: Clock) -> CapChannel:
        if kind != "cap":
            raise ChannelError(f"the http provider of CAP serves the cap kind only, not {kind!r}", permanent=True)
        return cls(settings, clock)

    def partner_for(self, address: str) -> tuple[str, CapPartner] | None:
        return next(((name, p) for name, p in self.settings.cap_partners.items() if same_endpoint(p.endpoint, address)),
                    None)

    # -- Channel -----------------------------------------------------------------
    def send(self, ping: OutgoingPing) -> SendResult:
        found = self.partner_for(ping.address)
        if found is None:
            raise ChannelError(f"no CAP partner is configured for the endpoint {ping.address}: add it to "
                               f"{ENV_PREFIX}CAP_PARTNERS (see docs/channels/cap.md)", code="cap-no-partner")
        name, partner = found
        secret = self.settings.cap_secrets.get(name)
        if secret is None and partner.auth != "none":
            raise ChannelError(f"the CAP partner {name!r} has no shared secret: set {ENV_PREFIX}CAP_SECRETS "
                               f"(e.g. '{{\"{name}\": \"...\"}}') in the environment", code="cap-no-secret")
        identifier = alert_identifier(name, ping.run_id, ping.ping_id)
        body = build_alert(identifier=identifier, sender=self.settings.cap_sender, sent=self.clock.now(),
                           addresses=partner.address or name, run_id=ping.run_id, ping_id=ping.ping_id,
                           language=ping.language, headline=ping.subject, text=ping.body,
                           sender_name=self.settings.cap_sender)
        headers = {"Content-Type": "application/xml; charset=utf-8"}
        auth: httpx.Auth | None = None
        key = secret.get_secret_value() if secret is not None else ""
        if partner.auth == "hmac":
            headers[HEADER] = sign(key, body)
        elif partner.auth == "bearer":
            headers["Authorization"] = f"Bearer {key}"
        elif partner.auth == "basic":
            auth = httpx.BasicAuth(partner.username or name, key)
        try:
            client = self._client(name, partner)
            url = partner.url or partner.endpoint
            r = client.post(url, content=body, headers=headers, auth=auth) if auth is not None else \
                client.post(url, content=body, headers=headers)
        except _NOT_SENT as exc:
            raise ChannelError(f"CAP partner {name} unreachable: {type(exc).__name__}: {exc}",
                               code="cap-unreachable") from exc
        except httpx.HTTPError as exc:
            # The alert may have arrived: never resent automatically (ARCHITECTURE.md invariant 1).
            raise ChannelError(f"CAP partner {name}: no answer after the alert went out ({type(exc).__name__}); it "
                               "may have arrived", ambiguous=True, code="cap-ambiguous") from exc
        if 200 <= r.status_code < 300:
            log.info("run=%s ping=%s CAP alert %s taken by %s (HTTP %s)", ping.run_id, ping.ping_id, identifier,
                     name, r.status_code)
            return SendResult(provider_ref=identifier, delivered=True)
        where = mask_address(partner.endpoint)
        if r.status_code in (404, 410):
            raise ChannelError(f"{where}: no CAP inbox at this address (HTTP {r.status_code})", permanent=True,
                               code="cap-no-inbox")
        if r.status_code in (401, 403):
            raise ChannelError(f"CAP partner {name} refused our credentials (HTTP {r.status_code}): check "
                               f"{ENV_PREFIX}CAP_SECRETS and its auth setting", code="cap-auth")
        raise ChannelError(f"CAP partner {name} answered HTTP {r.status_code}", code=f"cap-{r.status_code}")

    def poll_reports(self, now: datetime) -> list[ChannelReport]:
        return []  # the partner's Ack arrives at /hooks/cap/{partner}

    def close(self) -> None:
        with self._lock:
            for c in self._clients.values():
                c.close()
            self._clients.clear()

    def _client(self, name: str, partner: CapPartner) -> httpx.Client:
        if self._shared is not None:
            return self._shared
        with self._lock:
            if name not in self._clients:
                cert = (str(partner.client_cert), str(partner.client_key)) if partner.client_cert and partner.client_key \
                    else None
                self._clients[name] = httpx.Client(timeout=self.settings.cap_timeout_seconds, follow_redirects=False,
                                                   cert=cert, verify=str(partner.ca_file) if partner.ca_file else True)
            return self._clients[name]
