"""What a command needs, built once from the settings and passed down."""
from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy.engine import Engine

from commtest.clock import Clock, SystemClock
from commtest.db import ensure_schema, make_engine
from commtest.settings import Settings


@dataclass
class AppContext:
    settings: Settings
    clock: Clock = field(default_factory=SystemClock)
    _engine: Engine | None = None

    @property
    def engine(self) -> Engine:
        """The engine, with the schema migrated to head (commands that need it call this)."""
        if self._engine is None:
            self._engine = make_engine(self.settings.database_url)
            ensure_schema(self._engine)
        return self._engine

    def close(self) -> None:
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None
