"""Settings: loaded once, validated at start, passed down (CONVENTIONS.md rule 6).

Sources, strongest first: environment variables ``COMMTEST_*``; a TOML file named by
``COMMTEST_CONFIG``; the defaults below. Secrets come only from the environment, or
from a file that an environment variable ``COMMTEST_<NAME>_FILE`` names; a secret
written into the TOML file is refused, so it never lands in version control.
"""
from __future__ import annotations

import os
import tomllib
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, SecretStr, ValidationError, field_validator, model_validator
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from commtest.errors import ConfigError
from commtest.limits import CONFIG_FILE_MAX_BYTES, DEFAULT_MAX_DIRECTORY_BYTES, DEFAULT_MAX_PLAYBOOK_BYTES, format_size

ENV_PREFIX = "COMMTEST_"
CHANNEL_KINDS = ("email", "voice", "sms", "video", "cap", "manual")
SANDBOX_PROVIDER = "sandbox"
MANUAL_KIND = "manual"
MANUAL_PROVIDER = "coordinator"
# A key of a named provider configuration that holds a secret: refused there, read from the
# environment instead (``COMMTEST_PROVIDER_<NAME>_<KEY>`` or ``..._FILE``).
SECRET_KEY_WORDS = ("token", "password", "secret")


def shipped_playbook_dir() -> Path:
    """The folder of playbooks shipped with commtest (the ``playbooks`` package)."""
    return Path(__file__).resolve().parent.parent / "playbooks"


class CapPartner(BaseModel):
    """One CAP partner platform (docs/channels/cap.md). Its shared secret is in ``cap_secrets``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    endpoint: str  # the CAP endpoint address in the directory
    url: str | None = None  # where the alert is posted, when not the endpoint itself (a VPN address, the demo's fake)
    address: str = ""  # the partner's CAP address (<addresses> of our alert; empty = the partner's name)
    auth: Literal["hmac", "bearer", "basic", "none"] = "hmac"  # how our POST proves itself
    username: str | None = None  # for basic auth (the password is the partner's secret)
    client_cert: Path | None = None  # mutual TLS: our certificate (PEM) ...
    client_key: Path | None = None  # ... and its key
    ca_file: Path | None = None  # the CA that signed the partner's certificate, if not a public one

    @field_validator("endpoint", "url")
    @classmethod
    def _https(cls, value: str | None) -> str | None:
        if value is None:
            return value
        if not (value.startswith("https://") or value.startswith("http://127.0.0.1") or value.startswith("http://localhost")):
            raise ValueError(f"{value!r}: expected an https:// URL (plain http only to 127.0.0.1 or localhost)")
        return value


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="forbid", validate_default=True)
    _provider_secrets: dict[str, dict[str, SecretStr]] = PrivateAttr(default_factory=dict)

    # --- storage -----------------------------------------------------------
    database_url: str = Field(
        "sqlite:///var/commtest.db",
        description="SQLAlchemy URL. SQLite (default, one host) or postgresql://... (several replicas).",
    )
    playbook_dir: Path = Field(
        default_factory=shipped_playbook_dir,
        description="Folder of playbook YAML files, kept under version control by the coordinators.",
    )
    report_dir: Path = Field(Path("var/reports"), description="Where generated reports are written.")

    # --- time --------------------------------------------------------------
    timezone: str = Field("Europe/Brussels", description="IANA zone for console display when a playbook gives none.")
    misfire_grace: timedelta = Field(
        timedelta(minutes=15),
        description="A scheduled test whose fire time was missed by less than this still runs; otherwise it is recorded as missed.",
    )
    tick_seconds: float = Field(
        1.0, gt=0, description="How often the leading daemon starts due runs, reads provider reports, closes finished "
        "runs and looks for work other processes planned. Deadlines and due attempts do not wait for it: the leader's "
        "timers wake exactly when they come.")

    # --- directory ---------------------------------------------------------
    verified_max_age_days: int = Field(
        180, ge=1, description="`directory check` flags endpoints not proven reachable for longer than this."
    )
    default_language: str = Field("en", description="Language used when a contact point has none we support.")

    # --- channels ----------------------------------------------------------
    sandbox: bool = Field(
        False,
        description="true lets the sandbox providers answer for the duty officers (demo, tests, rehearsals): every "
        "kind without a provider then uses the sandbox, and everything it carries is marked simulated. Never in production.",
    )
    channels: dict[str, list[str]] = Field(
        default_factory=dict,
        description="Providers per channel kind, in failover order, e.g. {email = 'smtp', voice = ['twilio', "
        "'twilio-backup']}. A kind without a provider is not configured: a playbook that needs it is refused. "
        "'manual' always has the built-in 'coordinator' provider (a coordinator records the answer).",
    )
    provider_configs: dict[str, dict[str, Any]] = Field(
        default_factory=dict,
        description="Named provider configurations, so one kind can fail over between accounts: "
        "{twilio-backup = {type = 'twilio', ...}} makes 'twilio-backup' usable in channels. Secrets of a named "
        "configuration come from the environment only (see docs/configuration.md).",
    )

    sandbox_script: Path | None = Field(
        None, description="YAML file telling the sandbox providers how the simulated officers answer."
    )
    sandbox_log: Path | None = Field(
        None, description="JSON-lines file where the sandbox providers record every message they were handed."
    )
    dispatch_workers: int = Field(8, ge=1, le=64, description="Provider calls made at the same time by the daemon.")
    dispatch_prepare: Literal["process", "thread"] = Field(
        "process", description="Who reads and renders the next batch of messages while the daemon sends one: a "
        "helper process, started when a run starts and closed when idle (process: the fastest, it does not share "
        "the interpreter lock with the sending), or the daemon's own thread (thread: one process fewer).")

    # e-mail
    smtp_host: str = Field("127.0.0.1", description="SMTP server that sends the e-mail pings.")
    smtp_port: int = Field(2525, description="Its port (587 for STARTTLS, 465 for implicit TLS).")
    smtp_security: Literal["none", "starttls", "tls"] = Field("none", description="none, starttls or tls.")
    smtp_username: str | None = Field(None, description="SMTP login, if the server wants one.")
    smtp_password: SecretStr | None = Field(None, description="SMTP password (secret: environment or _FILE only).")
    smtp_timeout_seconds: float = Field(30.0, description="Give up on the SMTP server after this long (then retry).")
    mail_from: str = Field("commtest@commtest.example", description="From address of the e-mail pings.")
    reply_address: str = Field(
        "ack@commtest.example",
        description="Mailbox read by the IMAP reader; replies go to its plus-address carrying the ping's token.",
    )
    imap_host: str | None = Field(None, description="IMAP server of the reply mailbox; unset = replies are not read.")
    imap_port: int = Field(993, description="Its port.")
    imap_security: Literal["none", "starttls", "tls"] = Field("tls", description="none, starttls or tls.")
    imap_username: str | None = Field(None, description="IMAP login.")
    imap_password: SecretStr | None = Field(None, description="IMAP password (secret).")
    imap_mailbox: str = Field("INBOX", description="Folder the reader watches.")
    imap_poll_seconds: float = Field(30.0, description="Polling interval when the server offers no IDLE.")

    # --- video bridges and CAP links (docs/channels/video.md, docs/channels/cap.md) ---------
    jitsi_url: str | None = Field(
        None, description="Base URL of the self-hosted Jitsi Meet (https://meet.example); rooms are {jitsi_url}/{room}."
    )
    jitsi_app_id: str = Field("commtest", description="JWT issuer: the app_id of Prosody's token authentication.")
    jitsi_app_secret: SecretStr | None = Field(
        None, description="The app_secret of Prosody's token authentication: signs the join links (HS256). Secret."
    )
    jitsi_audience: str = Field("jitsi", description="JWT audience ('aud') that Prosody accepts (asap_accepted_audiences).")
    jitsi_subject: str | None = Field(
        None, description="JWT 'sub': the Jitsi domain or tenant; unset = the host name of COMMTEST_JITSI_URL."
    )
    jitsi_presence: Literal["webhook", "none"] = Field(
        "webhook",
        description="webhook: Prosody's event_sync module reports joins to /hooks/jitsi; none: the bridge reports "
        "nothing, and the ping's page offers 'I am in the video room' (recorded as self-reported, never as a join).",
    )
    jitsi_webhook_token: SecretStr | None = Field(
        None, description="Shared secret of the Jitsi webhook: the bearer token event_sync sends (api_headers "
        "Authorization), or the key of a signing proxy's X-Commtest-Signature (HMAC-SHA256 of the body); a webhook "
        "with neither right gets 403. Secret."
    )
    jitsi_end_meeting_url: str | None = Field(
        None, description="Prosody's mod_muc_end_meeting endpoint (https://meet.example/end-meeting) that closes a "
        "run's room when the run ends; unset = the room empties by itself and its links expire.",
    )
    jitsi_muc_domain: str | None = Field(
        None, description="The MUC domain of the rooms (conference.meet.example); unset = 'conference.' + the subject."
    )
    bigbluebutton_url: str | None = Field(
        None, description="BigBlueButton API base URL (https://bbb.example/bigbluebutton/api)."
    )
    bigbluebutton_secret: SecretStr | None = Field(
        None, description="BigBlueButton shared secret (bbb-conf --secret): signs every API call. Secret."
    )
    bigbluebutton_checksum: Literal["sha1", "sha256", "sha384", "sha512"] = Field(
        "sha256", description="Checksum algorithm of the API calls; the server must allow it (supportedChecksumAlgorithms)."
    )
    bigbluebutton_poll_seconds: float = Field(
        10.0, gt=0, description="How often getMeetingInfo is asked who is in a run's room (and once more just before "
        "each deadline).",
    )
    video_timeout_seconds: float = Field(10.0, gt=0, description="Give up on a video bridge's API after this long.")
    video_join_grace: timedelta = Field(
        timedelta(hours=1), description="A join link stays valid this long after its deadline (a late join is recorded late)."
    )
    video_room_max_minutes: int = Field(
        240, ge=10, description="The longest a run's room may stay open on the bridge, if the run's end never closes it."
    )
    cap_partners: dict[str, CapPartner] = Field(
        default_factory=dict,
        description="CAP partner platforms by name: {nl-lcms = {endpoint = 'https://...', address = 'lcms@...', "
        "auth = 'hmac'}}; 'endpoint' is the CAP endpoint address in the directory, where alerts are posted.",
    )
    cap_secrets: dict[str, SecretStr] = Field(
        default_factory=dict,
        description="Shared secret per CAP partner name (JSON in the environment or in a _FILE): signs our alerts and "
        "verifies the partner's Ack (HMAC-SHA256). Secret.",
    )
    cap_sender: str = Field("commtest@commtest.example", description="Our CAP <sender>, which the partner's Ack references.")
    cap_timeout_seconds: float = Field(10.0, gt=0, description="Give up on a CAP partner's endpoint after this long.")
    cap_max_body_bytes: int = Field(
        65536, ge=1024, le=1_048_576, description="Largest CAP message accepted on /hooks/cap (refused before parsing)."
    )

    # --- Twilio: the voice and sms providers `twilio` (docs/channels/voice-sms.md) ----------
    twilio_account_sid: str | None = Field(
        None, description="Account SID (AC...) of the Twilio account that places the calls and sends the SMS."
    )
    twilio_auth_token: SecretStr | None = Field(
        None, description="Its auth token (secret: environment or _FILE only); also checks the webhooks' signatures."
    )
    twilio_caller_id: str | None = Field(
        None, description="E.164 number the calls come from: a Twilio number of the account or a verified caller ID."
    )
    twilio_sms_from: str | None = Field(
        None, description="E.164 number (or Messaging Service SID, MG...) the SMS come from; replies come back to it."
    )
    twilio_base_url: str = Field(
        "https://api.twilio.com",
        description="Twilio's REST API. Anything else (a local fake) makes the provider simulated: it then needs "
        "COMMTEST_SANDBOX=true.",
    )
    twilio_rate_per_second: float = Field(
        1.0, gt=0, le=100, description="Calls (and, separately, SMS) started per second on this account: Twilio "
        "queues beyond the account's limit, 1 call per second by default."
    )
    twilio_timeout_seconds: float = Field(
        15.0, gt=0, le=120, description="Give up on one Twilio API request after this long; a create that timed out "
        "is never resent (its outcome is unknown)."
    )
    twilio_ring_seconds: int = Field(30, ge=5, le=600, description="How long a call rings before it is no-answer.")
    twilio_machine_detection: Literal["Enable", "DetectMessageEnd", "off"] = Field(
        "Enable", description="Answering-machine detection (charged per call): Enable, DetectMessageEnd or off."
    )
    twilio_voices: dict[str, str] = Field(
        default_factory=dict,
        description="Text-to-speech per language, overriding the built-in table: {'fr-BE' = 'fr-BE:Polly.Isabelle-Neural'} "
        "maps a language (or language-COUNTRY of the organisation) to 'language-code:voice'.",
    )

    # --- web ---------------------------------------------------------------
    web_host: str = Field("127.0.0.1", description="Address the web app listens on.")
    web_port: int = Field(8080, ge=0, le=65535, description="Port of the web app.")
    web_workers: int = Field(
        1, ge=1, le=32, description="Processes serving the web app. 1: a thread of the daemon. More: the daemon starts "
        "them beside itself (uvicorn workers on one port); the scheduler still runs in the daemon alone."
    )
    ack_writer: Literal["process", "thread"] = Field(
        "process", description="Who records the answers by link: a process of its own beside each web process "
        "(process: the fastest, it does not share the interpreter lock with the pages), or a thread of the web "
        "process (thread: one process fewer).")
    public_base_url: str = Field(
        "http://127.0.0.1:8080", description="Public URL of the web app, exactly as providers and officers reach it."
    )
    secret_key: SecretStr | None = Field(
        None, description="Signs CSRF tokens and sessions. Required when the web app runs on several replicas."
    )
    ack_token_ttl: timedelta = Field(timedelta(days=7), description="Lifetime of an acknowledgement link.")
    ack_suspicious_seconds: float = Field(
        10.0, description="An acknowledgement this soon after delivery is flagged as possibly automated (mail scanners)."
    )
    ack_rate_limit_per_minute: int = Field(30, ge=1, description="Requests per minute per source address on /ack.")

    # --- console, API and metrics -----------------------------------------
    trusted_proxies: list[str] = Field(
        default_factory=list,
        description="Addresses or CIDR ranges of reverse proxies whose X-Forwarded-For header is believed (rate "
        "limits, sign-in lock-outs, the audit log). Empty (the default): the header is ignored and the connecting "
        "address is the client's.",
    )
    session_hours: float = Field(8.0, gt=0, le=168, description="A console session ends this many hours after sign-in.")
    login_lockout_failures: int = Field(
        5, ge=1, description="Failed sign-ins in a row for one user name (from any address) before it is locked."
    )
    login_lockout_seconds: float = Field(
        60.0, gt=0, description="First lock-out; each further failure doubles it, up to an hour."
    )
    api_max_body_bytes: int = Field(
        2_000_000, ge=1024, description="Largest request body the JSON API reads (directory and playbook uploads); "
        "larger ones get 413 before anything is parsed."
    )
    metrics_token: SecretStr | None = Field(
        None, description="When set, /metrics wants 'Authorization: Bearer <token>' (secret: environment or _FILE only)."
    )
    heartbeat_seconds: float = Field(
        5.0, gt=0, description="How often the scheduler leader records its heartbeat and tick lateness for /metrics."
    )

    # --- reports -----------------------------------------------------------
    reviewers: list[str] = Field(default_factory=list, description="E-mail addresses that receive the monthly report.")

    # --- limits ------------------------------------------------------------
    max_playbook_bytes: int = Field(
        DEFAULT_MAX_PLAYBOOK_BYTES, ge=1024,
        description="A playbook file larger than this is refused before it is parsed (reported, skipped by the daemon).",
    )
    max_directory_bytes: int = Field(
        DEFAULT_MAX_DIRECTORY_BYTES, ge=1024,
        description="A directory file (YAML or CSV) larger than this is refused by `directory import` before it is parsed.",
    )

    # --- daemon ------------------------------------------------------------
    leader_wait: bool = Field(True, description="A second daemon waits as a standby instead of exiting.")
    log_level: str = Field("INFO", description="DEBUG, INFO, WARNING or ERROR.")

    @field_validator("trusted_proxies", mode="before")
    @classmethod
    def _proxy_list(cls, value: Any) -> Any:
        if isinstance(value, str):  # COMMTEST_TRUSTED_PROXIES=10.0.0.5,10.0.1.0/24 as well as JSON
            stripped = value.strip()
            if not stripped.startswith("["):
                return [v.strip() for v in stripped.split(",") if v.strip()]
        return value

    @field_validator("trusted_proxies")
    @classmethod
    def _proxy_networks(cls, value: list[str]) -> list[str]:
        import ipaddress

        for item in value:
            try:
                ipaddress.ip_network(item, strict=False)
            except ValueError as exc:
                raise ValueError(f"{item!r} is not an IP address or CIDR range (e.g. 10.0.0.5 or 10.0.0.0/24)") from exc
        return value

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError, OSError) as exc:  # OSError: "Europe" is a folder of zones
            raise ValueError(f"unknown IANA time zone {value!r} (e.g. Europe/Brussels)") from exc
        return value

    @field_validator("channels", mode="before")
    @classmethod
    def _provider_lists(cls, value: Any) -> Any:
        # One provider may be written as a string; several as a list, in failover order.
        if isinstance(value, dict):
            return {k: [v] if isinstance(v, str) else v for k, v in value.items()}
        return value

    @field_validator("channels")
    @classmethod
    def _known_kinds(cls, value: dict[str, list[str]]) -> dict[str, list[str]]:
        for kind, providers in value.items():
            if kind not in CHANNEL_KINDS:
                raise ValueError(f"unknown channel kind {kind!r}; expected one of {', '.join(CHANNEL_KINDS)}")
            if not providers:
                raise ValueError(f"{kind}: an empty provider list; name a provider or leave the kind out")
            if len(set(providers)) != len(providers):
                raise ValueError(f"{kind}: a provider is listed twice: {', '.join(providers)}")
            if kind == MANUAL_KIND and providers != [MANUAL_PROVIDER]:
                raise ValueError(f"manual: a coordinator records these answers; its only provider is {MANUAL_PROVIDER!r}")
        return value

    @model_validator(mode="after")
    def _sandbox_only_when_asked(self) -> Settings:
        """No kind falls back to the sandbox (ARCHITECTURE.md, "Real or simulated")."""
        for kind, providers in self.channels.items():
            if SANDBOX_PROVIDER in providers and not self.sandbox:
                raise ValueError(
                    f"channels.{kind} = sandbox: the sandbox answers for the duty officers; set COMMTEST_SANDBOX=true "
                    "to use it (demo, tests, rehearsals) or configure a real provider"
                )
        filled = dict(self.channels)
        filled[MANUAL_KIND] = [MANUAL_PROVIDER]
        if self.sandbox:
            for kind in CHANNEL_KINDS:
                filled.setdefault(kind, [SANDBOX_PROVIDER])
        # object.__setattr__: the model is being validated; assignment would validate again.
        object.__setattr__(self, "channels", {k: filled[k] for k in CHANNEL_KINDS if k in filled})
        return self

    @field_validator("cap_secrets", "cap_partners", mode="before")
    @classmethod
    def _json_text(cls, value: Any) -> Any:
        # A _FILE holds the mapping as JSON text (the environment's JSON is decoded before).
        if isinstance(value, str):
            import json

            try:
                return json.loads(value)
            except ValueError as exc:
                raise ValueError('expected a JSON object, e.g. {"nl-lcms": "..."}') from exc
        return value

    @field_validator("cap_partners")
    @classmethod
    def _partner_names(cls, value: dict[str, CapPartner]) -> dict[str, CapPartner]:
        import re

        bad = [name for name in value if not re.fullmatch(r"[a-z0-9][a-z0-9-]{0,39}", name)]
        if bad:
            raise ValueError(f"partner name {bad[0]!r}: expected lowercase letters, digits and '-' (e.g. nl-lcms)")
        return value

    @field_validator("twilio_voices")
    @classmethod
    def _voices(cls, value: dict[str, str]) -> dict[str, str]:
        for key, voice in value.items():
            code, sep, name = voice.partition(":")
            if not sep or len(code) != 5 or code[2] != "-" or not name:
                raise ValueError(f"{key}: {voice!r}: expected 'language-code:voice', e.g. 'fr-BE:Polly.Isabelle-Neural'")
        return value

    @field_validator("provider_configs")
    @classmethod
    def _named_configs(cls, value: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
        for name, config in value.items():
            if not config.get("type"):
                raise ValueError(f"{name}: 'type' is missing; it names the provider plugin, e.g. type = 'twilio'")
            leaked = sorted(k for k in config if any(word in k.lower() for word in SECRET_KEY_WORDS))
            if leaked:
                env = provider_secret_env(name, leaked[0])
                raise ValueError(f"{name}.{leaked[0]}: a secret of a named provider configuration is refused here; "
                                 f"set {env} (or {env}_FILE) in the environment")
        return value

    @model_validator(mode="after")
    def _read_provider_secrets(self) -> Settings:
        """The secrets of named provider configurations, read once from the environment."""
        found: dict[str, dict[str, SecretStr]] = {}
        for name in self.provider_configs:
            prefix = provider_secret_env(name, "")
            for key, text in os.environ.items():
                if not key.startswith(prefix) or not key[len(prefix):]:
                    continue
                field = key[len(prefix):].lower()
                if field.endswith("_file"):
                    try:
                        text = Path(text).read_text(encoding="utf-8").strip()
                    except OSError as exc:
                        raise ValueError(f"{key}: cannot read {text}: {exc.strerror}") from exc
                    field = field.removesuffix("_file")
                found.setdefault(name, {}).setdefault(field, SecretStr(text))
        self._provider_secrets = found
        return self

    def provider_secret(self, name: str, key: str) -> SecretStr | None:
        """A secret of the named provider configuration ``name`` (``auth_token``), from the
        environment: ``COMMTEST_PROVIDER_<NAME>_<KEY>`` or the file ``..._<KEY>_FILE`` names."""
        return self._provider_secrets.get(name, {}).get(key.lower())

    @field_validator("database_url")
    @classmethod
    def _driver(cls, value: str) -> str:
        # psycopg 3 is the PostgreSQL driver we install; accept the plain scheme.
        for plain in ("postgresql://", "postgres://"):
            if value.startswith(plain):
                return "postgresql+psycopg://" + value[len(plain):]
        if not (value.startswith("sqlite") or value.startswith("postgresql+psycopg")):
            raise ValueError("expected sqlite:///PATH or postgresql://USER@HOST/DB")
        return value

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings, _SecretFileSource(settings_cls), _TomlSource(settings_cls))

    # -----------------------------------------------------------------------
    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    def providers(self, kind: str) -> list[str]:
        """The providers of ``kind`` in failover order; empty when the kind is not configured."""
        return list(self.channels.get(kind, ()))

    def primary_provider(self, kind: str) -> str:
        providers = self.providers(kind)
        return providers[0] if providers else ""

    def channel_status(self, kind: str) -> str:
        """``real``, ``sandbox`` or ``not configured``: what `check-config` says of each kind."""
        providers = self.providers(kind)
        if not providers:
            return "not configured"
        return "sandbox" if providers == [SANDBOX_PROVIDER] else "real"

    def masked(self) -> dict[str, Any]:
        """Every setting, secrets masked: what `commtest check-config` prints."""
        from commtest.i18n import format_duration

        out: dict[str, Any] = {}
        for name in type(self).model_fields:
            value = getattr(self, name)
            if isinstance(value, SecretStr):
                value = "********" if value.get_secret_value() else ""
            elif isinstance(value, dict) and any(isinstance(v, SecretStr) for v in value.values()):
                value = {k: "********" for k in value}
            elif isinstance(value, dict) and any(isinstance(v, BaseModel) for v in value.values()):
                value = {k: v.model_dump(mode="json") if isinstance(v, BaseModel) else v for k, v in value.items()}
            elif name in ("database_url", "public_base_url", "twilio_base_url"):
                value = mask_url(value) if isinstance(value, str) else value
            elif isinstance(value, timedelta):
                value = format_duration(value.total_seconds() * 1000, "en")  # one duration style everywhere
            elif isinstance(value, Path):
                value = str(value)
            out[name] = value
        return out


def provider_secret_env(name: str, key: str) -> str:
    """``COMMTEST_PROVIDER_TWILIO_BACKUP_AUTH_TOKEN`` for (``twilio-backup``, ``auth_token``)."""
    norm = "".join(c if c.isalnum() else "_" for c in name).upper()
    return f"{ENV_PREFIX}PROVIDER_{norm}_{key.upper()}"


def secret_fields() -> list[str]:
    return [
        name
        for name, info in Settings.model_fields.items()
        if info.annotation is not None and "SecretStr" in str(info.annotation)
    ]


def mask_url(url: str) -> str:
    """Hide the password of a URL, in its user part or in its query (``?password=``), and
    print everything else exactly as written: rebuilding the URL would drop the empty host of
    ``sqlite:////var/lib/x.db`` and change the path it names."""
    from urllib.parse import unquote_plus, urlsplit

    try:
        parts = urlsplit(url)
    except ValueError:
        return "********"
    out = url
    if "@" in parts.netloc:
        creds, host = parts.netloc.rsplit("@", 1)
        if ":" in creds:
            out = out.replace(f"//{parts.netloc}", f"//{creds.split(':', 1)[0]}:********@{host}", 1)
    if parts.query:
        pairs = []
        for pair in parts.query.split("&"):
            key, sep, _value = pair.partition("=")
            secret = unquote_plus(key).lower() in ("password", "pass", "pwd", "passfile", "sslpassword")
            pairs.append(f"{key}=********" if sep and secret else pair)
        out = out.replace(f"?{parts.query}", "?" + "&".join(pairs), 1)
    return out


class _TomlSource(PydanticBaseSettingsSource):
    """Reads the TOML file named by COMMTEST_CONFIG, refusing secrets in it."""

    def __init__(self, settings_cls: type[BaseSettings]) -> None:
        super().__init__(settings_cls)
        self._data: dict[str, Any] = {}
        path = os.environ.get(ENV_PREFIX + "CONFIG")
        if not path:
            return
        try:
            with open(path, "rb") as fh:
                raw = fh.read(CONFIG_FILE_MAX_BYTES + 1)
        except FileNotFoundError as exc:
            raise ConfigError(f"{path}: configuration file not found (named by {ENV_PREFIX}CONFIG)") from exc
        except OSError as exc:
            raise ConfigError(f"{path}: cannot read the configuration file: {exc.strerror or exc}") from exc
        if len(raw) > CONFIG_FILE_MAX_BYTES:
            raise ConfigError(f"{path}: a configuration file may be at most {format_size(CONFIG_FILE_MAX_BYTES)}; "
                              "this one is larger and was not read")
        try:
            data = tomllib.loads(raw.decode("utf-8"))
        except UnicodeDecodeError as exc:
            raise ConfigError(f"{path}: not UTF-8 text (byte {exc.start}); save it as UTF-8") from exc
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path}: not valid TOML: {exc}") from exc
        except RecursionError as exc:  # tomllib parses nested arrays and tables recursively
            raise ConfigError(f"{path}: not valid TOML: values nested too deeply; "
                              "a commtest configuration needs two levels at most") from exc
        if not isinstance(data.get("commtest", data), dict):
            raise ConfigError(f"{path}: commtest: expected a table ([commtest]) of settings")
        data = data.get("commtest", data)
        leaked = sorted(set(data) & set(secret_fields()))
        if leaked:
            raise ConfigError(
                f"{path}: {', '.join(leaked)}: secrets must not be written in the configuration file; "
                f"set {ENV_PREFIX}{leaked[0].upper()} or {ENV_PREFIX}{leaked[0].upper()}_FILE in the environment"
            )
        self._data = data

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return self._data.get(field_name), field_name, False

    def __call__(self) -> dict[str, Any]:
        return dict(self._data)


class _SecretFileSource(PydanticBaseSettingsSource):
    """COMMTEST_<SECRET>_FILE names a file holding the secret (Docker/systemd credentials)."""

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name in secret_fields():
            path = os.environ.get(f"{ENV_PREFIX}{name.upper()}_FILE")
            if path:
                try:
                    out[name] = Path(path).read_text(encoding="utf-8").strip()
                except OSError as exc:
                    raise ConfigError(f"{ENV_PREFIX}{name.upper()}_FILE: cannot read {path}: {exc.strerror}") from exc
        return out


def load_settings(**overrides: Any) -> Settings:
    """Load and validate the settings once; translate pydantic's errors into a ConfigError."""
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        lines = []
        toml_keys = set(_TomlSource(Settings)()) if os.environ.get(ENV_PREFIX + "CONFIG") else set()
        for err in exc.errors():
            field = ".".join(str(p) for p in err["loc"])
            top = str(err["loc"][0]) if err["loc"] else ""
            if err["type"] == "extra_forbidden" and top in toml_keys:
                lines.append(f"{os.environ[ENV_PREFIX + 'CONFIG']}: {field}: unknown setting; "
                             "see docs/configuration.md for the settings that exist")
            elif err["type"] == "extra_forbidden":
                lines.append(f"{field}: unknown setting")
            else:
                lines.append(f"{ENV_PREFIX}{field.upper()}: {err['msg']}")
        raise ConfigError("invalid configuration:\n" + "\n".join(lines)) from exc
