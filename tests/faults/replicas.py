"""Real ``commtest daemon`` replicas on one database, for the fault suite.

Each replica is a slot with its own loopback port; a killed replica is started again in
its slot, so two always compete for leadership. Who leads, and since when, is read from
the daemons' own log lines ("leading: ticking every", "waiting as a standby", "leadership
lost"), tailed by the test process with a monotonic timestamp of when each was seen.
"""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from channels.sandbox import SandboxRecord

LEADING = b"leading: ticking every"
STANDBY = b"waiting as a standby"
LOST = b"leadership lost"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(predicate: Callable[[], object], timeout: float, what: str, logs: Callable[[], str] | None = None,
              poll: float = 0.02) -> float:
    """Poll ``predicate`` until true; the monotonic time it became true. On a timeout the
    assertion names what was awaited and shows the daemons' logs."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return time.monotonic()
        time.sleep(poll)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}\n{logs() if logs else ''}")


@dataclass
class Replica:
    """One process started in a slot."""

    slot: str
    popen: subprocess.Popen[bytes]
    log: Path
    sandbox_log: Path
    started: float
    state: str = "starting"  # starting | standby | leading
    leading_since: float | None = None
    leaderships: int = 0
    losses: int = 0
    _offset: int = 0
    _rest: bytes = b""

    @property
    def pid(self) -> int:
        return self.popen.pid

    @property
    def alive(self) -> bool:
        return self.popen.poll() is None

    def tail(self) -> None:
        """Read what the process logged since the last call and follow its leadership."""
        try:
            with self.log.open("rb") as fh:
                fh.seek(self._offset)
                data = fh.read()
        except FileNotFoundError:
            return
        self._offset += len(data)
        lines = (self._rest + data).split(b"\n")
        self._rest = lines.pop()
        now = time.monotonic()
        for line in lines:
            if LEADING in line:
                self.state, self.leading_since = "leading", now
                self.leaderships += 1
            elif STANDBY in line:
                self.state = "standby"
            elif LOST in line:
                self.state, self.leading_since = "standby", None
                self.losses += 1


@dataclass
class Kill:
    pid: int
    slot: str
    at: float  # monotonic
    failover_s: float | None = None


@dataclass
class Daemons:
    """Daemon replicas on ``db_url``; ``env`` holds the settings every replica shares."""

    tmp: Path
    env: dict[str, str]
    slots: tuple[str, ...] = ("a", "b")
    ports: dict[str, int] = field(default_factory=dict)
    current: dict[str, Replica] = field(default_factory=dict)
    started: list[Replica] = field(default_factory=list)
    kills: list[Kill] = field(default_factory=list)

    def __post_init__(self) -> None:
        for slot in self.slots:
            self.ports.setdefault(slot, free_port())

    def url(self, slot: str) -> str:
        return f"http://127.0.0.1:{self.ports[slot]}"

    def start(self, slot: str) -> Replica:
        n = sum(1 for r in self.started if r.slot == slot)
        log = self.tmp / f"daemon-{slot}{n}.log"
        sandbox_log = self.tmp / f"sandbox-{slot}{n}.jsonl"  # the sandbox's own log, one per process
        env = {k: v for k, v in os.environ.items() if not k.startswith("COMMTEST_")}
        env.update(self.env)
        env.update({"COMMTEST_WEB_PORT": str(self.ports[slot]), "COMMTEST_SANDBOX_LOG": str(sandbox_log)})
        with log.open("wb") as out:
            popen = subprocess.Popen([sys.executable, "-m", "commtest", "daemon"], env=env, stdout=out,
                                     stderr=subprocess.STDOUT, cwd=self.tmp)
        replica = Replica(slot, popen, log, sandbox_log, time.monotonic())
        self.current[slot] = replica
        self.started.append(replica)
        return replica

    def tail(self) -> None:
        for replica in self.current.values():
            replica.tail()

    def leader(self) -> Replica | None:
        self.tail()
        leading = [r for r in self.current.values() if r.alive and r.state == "leading"]
        assert len(leading) <= 1, f"two replicas say they lead: {[r.pid for r in leading]}\n{self.logs()}"
        return leading[0] if leading else None

    def wait_leader(self, timeout: float = 60.0, *, other_than: int | None = None) -> tuple[Replica, float]:
        found: list[Replica] = []

        def led() -> bool:
            leader = self.leader()
            if leader is not None and leader.pid != other_than:
                found.append(leader)
                return True
            return False

        at = wait_for(led, timeout, "a replica to lead", self.logs)
        return found[-1], at

    def wait_standby(self, replica: Replica, timeout: float = 90.0) -> None:
        def ready() -> bool:
            assert replica.alive, f"replica {replica.slot} (pid {replica.pid}) exited\n{self.logs()}"
            replica.tail()
            return replica.state in ("standby", "leading")

        wait_for(ready, timeout, f"replica {replica.slot} (pid {replica.pid}) to compete for leadership", self.logs,
                 poll=0.05)

    def kill_leader(self, leader: Replica) -> Kill:
        leader.popen.send_signal(signal.SIGKILL)
        kill = Kill(leader.pid, leader.slot, time.monotonic())
        leader.popen.wait(30)
        self.kills.append(kill)
        return kill

    def stop(self, timeout: float = 60.0) -> dict[int, int | None]:
        """SIGTERM every live replica; their exit codes (None: had to be killed)."""
        codes: dict[int, int | None] = {}
        live = [r for r in self.current.values() if r.alive]
        for r in live:
            r.popen.send_signal(signal.SIGTERM)
        for r in live:
            try:
                codes[r.pid] = r.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                r.popen.kill()
                r.popen.wait(10)
                codes[r.pid] = None
        return codes

    def kill_all(self) -> None:
        """Teardown: end every process this helper started (by its own handle)."""
        for r in self.started:
            if r.alive:
                r.popen.kill()
                r.popen.wait(10)

    def sandbox_sent(self) -> list[dict[str, object]]:
        out: list[dict[str, object]] = []
        for r in self.started:
            out.extend(e for e in SandboxRecord.read_log(r.sandbox_log) if not e.get("notice"))
        return out

    def sandbox_count(self) -> int:
        n = 0
        for r in self.started:
            try:
                n += r.sandbox_log.read_bytes().count(b"\n")
            except FileNotFoundError:
                continue
        return n

    def logs(self, tail: int = 4000) -> str:
        parts = []
        for r in self.started[-6:]:
            try:
                text = r.log.read_text(errors="replace")
            except FileNotFoundError:
                text = ""
            parts.append(f"--- {r.log.name} pid {r.pid} ({'alive' if r.alive else 'ended'})\n{text[-tail:]}")
        return "\n".join(parts)

    def lost_leadership(self) -> set[int]:
        """Replicas that lost leadership without being killed (a leader check that failed on a
        loaded database server): what they had claimed may be unknown too."""
        self.tail()
        return {r.pid for r in self.started if r.losses}

    def problems(self) -> list[str]:
        """Log lines of every replica that say something went wrong (tracebacks, errors). A lost
        leadership is not one: the replica stops dispatching and competes again, as it must."""
        out = []
        for r in self.started:
            try:
                text = r.log.read_text(errors="replace")
            except FileNotFoundError:
                continue
            for line in text.splitlines():
                if LOST.decode() in line:
                    continue
                if "Traceback" in line or " ERROR " in line or " CRITICAL " in line:
                    out.append(f"{r.log.name}: {line}")
        return out


def dump_json(path: Path, data: object) -> None:
    path.write_text(json.dumps(data, indent=1, sort_keys=True, default=str))
