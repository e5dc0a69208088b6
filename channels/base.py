"""The channel interface: what the run engine hands a provider and what it gets back."""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import ClassVar, Literal, Protocol, runtime_checkable

from commtest.clock import Clock
from commtest.settings import Settings

ReportKind = Literal[
    "delivered",  # the provider handed it over (mail accepted, SMS delivered)
    "ringing",  # the phone rings: a call's response time runs from here
    "answered",  # someone or something picked up (informational; a key press is the acknowledgement)
    "acked",
    "voicemail",  # an answering machine: never an acknowledgement
    "away",  # an out-of-office reply
    "busy",
    "no_answer",
    "blocked",  # the number refuses our messages (SMS STOP)
    "bounced",
    "failed",
]


# Kinds whose providers speak the message and may not speak every language (no text-to-speech
# has Luxembourgish): the engine also renders these in the contact's next languages.
SPOKEN_KINDS = frozenset({"voice"})


@dataclass(frozen=True)
class AlternativeText:
    """The same message rendered in another of the contact's languages, preferred first."""

    language: str
    subject: str
    body: str


@dataclass(frozen=True)
class OutgoingPing:
    """One message to one endpoint. ``token`` is the raw acknowledgement token: only its
    hash is stored, so this is the one place it exists besides the message itself."""

    ping_id: int
    run_id: int
    channel: str
    address: str
    language: str
    subject: str
    body: str
    html: str | None
    ack_url: str
    ack_code: str
    token: str
    deadline_at: datetime
    organisation_code: str
    contact_name: str
    attempt: int = 1
    # Video: the mailbox the invitation goes to (the contact point's best e-mail endpoint).
    # A bridge hosts the room but delivers no message; ``address`` stays the video endpoint.
    invite_address: str | None = None
    country: str = ""  # the organisation's: ISO 3166-1 alpha-2, or a subdivision such as DE-NW
    # For SPOKEN_KINDS: the message in the contact's other languages (then the playbook's default).
    alternatives: tuple[AlternativeText, ...] = ()


@dataclass(frozen=True)
class SendResult:
    """The provider accepted the ping. ``provider_ref`` identifies it in later reports
    (an e-mail Message-ID, a Twilio Call SID)."""

    provider_ref: str | None
    delivered: bool = False  # some providers confirm delivery synchronously


@dataclass(frozen=True)
class ChannelReport:
    """Something a provider told us about a ping after it was sent.

    The ping is found by ``ping_id`` when the channel knows it, else by ``provider_ref``
    or by the raw acknowledgement ``token``.
    """

    kind: ReportKind
    at: datetime
    ping_id: int | None = None
    provider_ref: str | None = None
    token: str | None = None
    method: str | None = None  # for acked: link, email-reply, keypress, sms-reply, video-join, cap-ack, self-reported
    by: str | None = None  # who acknowledged, when known
    detail: str = ""
    permanent: bool = False  # for failed: whether a retry on the same endpoint may help
    extra: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Notice:
    """A message that is not a test ping (e.g. the announcement of an announced test):
    nothing to acknowledge, no token, never retried."""

    run_id: int
    channel: str
    address: str
    language: str
    subject: str
    body: str
    organisation_code: str
    contact_name: str


@runtime_checkable
class Channel(Protocol):
    """A provider of one channel kind. Implementations raise ``commtest.errors.ChannelError``
    (``permanent=True`` when retrying the same endpoint cannot help) and translate their
    own exceptions at the boundary."""

    kind: str
    provider: str
    # True for a provider that plays the far side (the sandbox, a local fake): what it carries
    # is marked simulated everywhere and never proves an endpoint. Optional; False when absent.
    # simulated: bool

    def send(self, ping: OutgoingPing) -> SendResult: ...

    def poll_reports(self, now: datetime) -> list[ChannelReport]:
        """Reports that arrived since the last call (polling providers, sandboxes)."""
        ...

    def close(self) -> None: ...


@runtime_checkable
class NoticeSender(Protocol):
    """Channels that can also send a ``Notice`` (optional)."""

    def send_notice(self, notice: Notice) -> str | None: ...


class ChannelFactory(Protocol):
    provider: ClassVar[str]

    @classmethod
    def create(cls, kind: str, settings: Settings, clock: Clock) -> Channel: ...
