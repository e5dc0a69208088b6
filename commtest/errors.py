"""One error root with narrow subclasses (CONVENTIONS.md, "Errors a user sees").

Each error carries the exit code the CLI uses: 2 when the input or the command
line was wrong, 1 when the job itself failed.
"""
from __future__ import annotations

from dataclasses import dataclass


class CommtestError(Exception):
    """Root of every error commtest raises on purpose."""

    exit_code: int = 1


class ConfigError(CommtestError):
    """The settings are invalid or incomplete."""

    exit_code = 2


class DatabaseError(CommtestError):
    """The database cannot be reached or its schema is wrong."""


class NotFoundError(CommtestError):
    """A named thing (organisation, playbook, run...) does not exist."""

    exit_code = 2


@dataclass(frozen=True)
class Problem:
    """One problem found in an input file, located as precisely as we can."""

    file: str
    line: int | None
    field: str
    message: str
    column: int | None = None

    def __str__(self) -> str:
        where = self.file
        if self.line is not None:
            where += f":{self.line}"
            if self.column is not None:
                where += f":{self.column}"
        return f"{where}: {self.field}: {self.message}" if self.field else f"{where}: {self.message}"


class ValidationFailed(CommtestError):
    """An input file was refused; ``problems`` lists every reason found."""

    exit_code = 2

    def __init__(self, problems: list[Problem], summary: str = "") -> None:
        self.problems = list(problems)
        self.summary = summary or f"{len(self.problems)} problem(s) found; nothing was written"
        super().__init__(self.render())

    def render(self) -> str:
        lines = [str(p) for p in self.problems]
        lines.append(self.summary)
        return "\n".join(lines)


class LeadershipLost(CommtestError):
    """This process no longer holds the scheduler leader lock: stop dispatching."""


class ChannelError(CommtestError):
    """A channel could not send or parse. ``permanent`` tells whether a retry may help."""

    def __init__(self, message: str, *, permanent: bool = False, code: str | None = None,
                 ambiguous: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.permanent = permanent
        self.code = code
        # The provider may have accepted it anyway (a timeout after the request went out):
        # never resent automatically, and no failover to another provider.
        self.ambiguous = ambiguous


class UnknownChannelKind(ConfigError):
    """A playbook or setting names a channel kind that no installed plugin provides."""


class PermissionDenied(CommtestError):
    """The user's role does not allow the action."""

    exit_code = 2
