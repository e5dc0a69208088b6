"""Sandbox providers for every channel kind: they record what they are handed and play
the other side (acknowledge after N seconds, never, bounce, voicemail, away, fail).

Used by tests, the demo, and dry runs of new playbooks. The record is kept in memory
and, when ``sandbox_log`` is set, appended to a JSON-lines file with fsync before
``send`` returns: the kill -9 tests compare that file with the database.

A script (YAML) says how each address answers; the first matching rule wins:

    default: {behaviour: ack, after: 30s}
    rules:
      - match: "*@nl-ncc.example"      # fnmatch pattern on the address
        channel: email                  # optional
        attempt: 1                      # optional: only this attempt
        behaviour: never                # ack | never | bounce | voicemail | away | fail | fail_permanent | invalid
        after: 5m
"""
from __future__ import annotations

import fnmatch
import json
import os
import threading
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Literal

from ruamel.yaml.error import YAMLError

from channels.base import ChannelReport, Notice, OutgoingPing, ReportKind, SendResult
from commtest.clock import Clock
from commtest.errors import ChannelError, ConfigError, ValidationFailed
from commtest.limits import SANDBOX_SCRIPT_MAX_BYTES, read_limited
from commtest.masking import mask_address
from commtest.settings import Settings
from commtest.yaml_input import YamlRefused, bounded_yaml, refusal_problem
from playbooks.durations import parse_duration

Behaviour = Literal["ack", "never", "bounce", "voicemail", "away", "fail", "fail_permanent", "invalid"]
# Not ``manual``: a radio check waits for a coordinator's record, in a rehearsal too.
KINDS_SANDBOX = ("email", "voice", "sms", "video", "cap")
BEHAVIOURS = ("ack", "never", "bounce", "voicemail", "away", "fail", "fail_permanent", "invalid")

ACK_METHOD = {
    "email": "link",
    "voice": "keypress",
    "sms": "sms-reply",
    "video": "video-join",
    "cap": "cap-ack",
}


@dataclass(frozen=True)
class Rule:
    behaviour: Behaviour
    after: timedelta = timedelta(seconds=30)
    match: str = "*"
    channel: str | None = None
    attempt: int | None = None
    by: str | None = None
    send_delay: float = 0.0  # seconds the provider takes to accept (to test crashes mid-call)

    def applies(self, ping: OutgoingPing) -> bool:
        if self.channel and self.channel != ping.channel:
            return False
        if self.attempt is not None and self.attempt != ping.attempt:
            return False
        return fnmatch.fnmatch(ping.address.lower(), self.match.lower())


@dataclass
class SandboxScript:
    default: Rule = field(default_factory=lambda: Rule("ack", timedelta(seconds=30)))
    rules: list[Rule] = field(default_factory=list)

    def rule_for(self, ping: OutgoingPing) -> Rule:
        for rule in self.rules:
            if rule.applies(ping):
                return rule
        return self.default

    @classmethod
    def from_data(cls, data: dict[str, Any], source: str = "<script>") -> SandboxScript:
        def rule(item: dict[str, Any], where: str) -> Rule:
            behaviour = item.get("behaviour", "ack")
            if behaviour not in BEHAVIOURS:
                raise ConfigError(f"{source}: {where}.behaviour: unknown {behaviour!r}; expected one of {', '.join(BEHAVIOURS)}")
            try:
                after = parse_duration(item.get("after", "30s"), numbers_as_seconds=True)  # a script's bare number is seconds
            except ValueError as exc:
                raise ConfigError(f"{source}: {where}.after: {exc}") from exc
            return Rule(
                behaviour=behaviour,
                after=after,
                match=str(item.get("match", "*")),
                channel=item.get("channel"),
                attempt=item.get("attempt"),
                by=item.get("by"),
                send_delay=_seconds(item.get("send_delay", 0.0), f"{source}: {where}.send_delay"),
            )

        default = rule(dict(data.get("default") or {}), "default")
        rules = [rule(dict(r), f"rules[{i}]") for i, r in enumerate(data.get("rules") or [])]
        return cls(default=default, rules=rules)

    @classmethod
    def from_file(cls, path: Path) -> SandboxScript:
        """Read a script file: bounded like every file commtest reads (size, YAML aliases and depth)."""
        try:
            raw = read_limited(path, limit=SANDBOX_SCRIPT_MAX_BYTES, what="a sandbox script", setting=None)
            data = bounded_yaml().load(raw.decode("utf-8")) or {}
        except OSError as exc:
            raise ConfigError(f"{path}: cannot read the sandbox script: {exc.strerror}") from exc
        except ValidationFailed as exc:
            raise ConfigError(str(exc.problems[0])) from exc
        except UnicodeDecodeError as exc:
            raise ConfigError(f"{path}: the sandbox script is not UTF-8 text; save it as UTF-8") from exc
        except YamlRefused as exc:
            raise ConfigError(str(refusal_problem(exc, str(path)))) from exc
        except YAMLError as exc:
            raise ConfigError(f"{path}: the sandbox script is not valid YAML: {exc}") from exc
        if not isinstance(data, dict):
            raise ConfigError(f"{path}: a sandbox script is a mapping (default:, rules:); this one is not")
        rules = data.get("rules") or []
        if not isinstance(rules, list) or not all(isinstance(r, dict) for r in rules):
            raise ConfigError(f"{path}: rules: expected a list of mappings (- match: ..., behaviour: ...)")
        if not isinstance(data.get("default") or {}, dict):
            raise ConfigError(f"{path}: default: expected a mapping ({{behaviour: ack, after: 30s}})")
        return cls.from_data(data, str(path))


def _seconds(value: Any, where: str) -> float:
    try:
        return float(value)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{where}: expected a number of seconds, got {value!r}") from exc


class SandboxRecord:
    """What every sandbox channel of a process was handed (shared across kinds)."""

    def __init__(self, log_path: Path | None = None) -> None:
        self.sent: list[dict[str, Any]] = []
        self.log_path = log_path
        self._lock = threading.Lock()

    def append(self, entry: dict[str, Any]) -> None:
        with self._lock:
            self.sent.append(entry)
            if self.log_path is not None:
                self.log_path.parent.mkdir(parents=True, exist_ok=True)
                line = json.dumps(entry, sort_keys=True) + "\n"
                fd = os.open(self.log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
                try:
                    os.write(fd, line.encode())
                    os.fsync(fd)
                finally:
                    os.close(fd)

    @staticmethod
    def read_log(path: Path) -> list[dict[str, Any]]:
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


class SandboxChannel:
    """A fake provider for one channel kind. Everything it carries is simulated."""

    provider = "sandbox"

    def __init__(self, kind: str, clock: Clock, script: SandboxScript | None = None, record: SandboxRecord | None = None,
                 *, simulated: bool = True) -> None:
        # simulated=False is for tests only: the script then stands in for a real provider
        # with real people behind it (what such a provider reports is evidence).
        self.simulated = simulated
        self.kind = kind
        self.clock = clock
        self.script = script or SandboxScript()
        self.record = record or SandboxRecord()
        self._queue: list[ChannelReport] = []
        self._lock = threading.Lock()

    @classmethod
    def create(cls, kind: str, settings: Settings, clock: Clock) -> SandboxChannel:
        if kind not in KINDS_SANDBOX:
            raise ChannelError(f"there is no sandbox for {kind!r}: a coordinator records those answers", permanent=True)
        script = SandboxScript.from_file(settings.sandbox_script) if settings.sandbox_script else None
        return cls(kind, clock, script, _shared_record(settings.sandbox_log))

    # -- Channel -----------------------------------------------------------------
    def send(self, ping: OutgoingPing) -> SendResult:
        rule = self.script.rule_for(ping)
        if rule.send_delay:
            self.clock.sleep(rule.send_delay)
        now = self.clock.now()
        if rule.behaviour == "fail":
            raise ChannelError(f"sandbox {self.kind} provider unavailable (scripted)", permanent=False, code="sandbox-down")
        if rule.behaviour == "fail_permanent":
            raise ChannelError(f"sandbox {self.kind} provider rejects {mask_address(ping.address)} for good (scripted)",
                               permanent=True, code="rejected")
        if rule.behaviour == "invalid":
            raise ChannelError(f"sandbox refuses {mask_address(ping.address)} as invalid (scripted)", permanent=True, code="invalid")
        ref = f"sbx-{self.kind}-{uuid.uuid4().hex[:16]}"
        self.record.append(
            {
                "ping_id": ping.ping_id,
                "run_id": ping.run_id,
                "channel": ping.channel,
                "address": ping.address,
                "attempt": ping.attempt,
                "language": ping.language,
                "subject": ping.subject,
                "at": now.isoformat(),
                "provider_ref": ref,
                "pid": os.getpid(),
            }
        )
        reports: list[ChannelReport] = []
        first: ReportKind = "ringing" if self.kind == "voice" else "delivered"
        if rule.behaviour != "bounce":
            reports.append(ChannelReport(first, now + timedelta(seconds=1), ping_id=ping.ping_id, provider_ref=ref))
        later = now + rule.after
        if rule.behaviour == "ack":
            reports.append(
                ChannelReport(
                    "acked", later, ping_id=ping.ping_id, provider_ref=ref,
                    method=ACK_METHOD.get(self.kind, "sandbox"), by=rule.by,
                )
            )
        elif rule.behaviour == "bounce":
            reports.append(ChannelReport("bounced", now + timedelta(seconds=2), ping_id=ping.ping_id, provider_ref=ref, detail="550 5.1.1 mailbox unknown (scripted)"))
        elif rule.behaviour == "voicemail":
            reports.append(ChannelReport("voicemail", now + timedelta(seconds=min(rule.after.total_seconds(), 25)), ping_id=ping.ping_id, provider_ref=ref, detail="answering machine"))
        elif rule.behaviour == "away":
            reports.append(ChannelReport("away", later, ping_id=ping.ping_id, provider_ref=ref, detail="out of office (scripted)"))
        with self._lock:
            self._queue.extend(reports)
        return SendResult(provider_ref=ref)

    def send_notice(self, notice: Notice) -> str | None:
        ref = f"sbx-notice-{uuid.uuid4().hex[:16]}"
        self.record.append({"notice": True, "run_id": notice.run_id, "channel": notice.channel,
                            "address": notice.address, "language": notice.language, "subject": notice.subject,
                            "at": self.clock.now().isoformat(), "provider_ref": ref, "pid": os.getpid()})
        return ref

    def poll_reports(self, now: datetime) -> list[ChannelReport]:
        with self._lock:
            due = [r for r in self._queue if r.at <= now]
            self._queue = [r for r in self._queue if r.at > now]
        return sorted(due, key=lambda r: r.at)

    def pending_reports(self) -> int:
        with self._lock:
            return len(self._queue)

    def close(self) -> None:
        pass


_records: dict[str, SandboxRecord] = {}
_records_lock = threading.Lock()


def _shared_record(log_path: Path | None) -> SandboxRecord:
    key = str(log_path) if log_path else ""
    with _records_lock:
        if key not in _records:
            _records[key] = SandboxRecord(log_path)
        return _records[key]
