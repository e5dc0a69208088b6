"""What a report needs from the playbook revision a run ran: its targets and channels.

Parsed from ``PlaybookRevision.source_text`` here (not through the playbook loader) so
that a report only depends on the stored, immutable text and on the schema.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from pydantic import ValidationError
from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError

from commtest.errors import CommtestError
from commtest.facts import FactRules
from playbooks.schema import PlaybookSpec


class RevisionUnreadable(CommtestError):
    """A stored playbook revision no longer validates (the schema changed since)."""


@dataclass(frozen=True)
class PlaybookFacts:
    playbook_id: str
    title: str
    titles: dict[str, str]
    timezone: str
    participants: tuple[str, ...]
    # (organisation, field of work) pairs the playbook pings
    participant_fields: tuple[tuple[str, str], ...]
    # Channels pinged at run start (``rules.needed``: which organisation on which; one
    # without a ping on its channel gets "no endpoint").
    needed_channels: tuple[str, ...]
    targets_ms: dict[str, int]
    rules: FactRules
    # step id -> its channel and its template: a report names a step by its channel, in the
    # reader's words, and a template by its name (an identifier a coordinator fixes).
    step_channels: dict[str, str] = field(default_factory=dict)
    step_templates: dict[str, str] = field(default_factory=dict)


def playbook_facts(source_text: str, *, revision_id: int | None = None) -> PlaybookFacts:
    try:
        raw = YAML(typ="safe", pure=True).load(source_text)
        spec = PlaybookSpec.model_validate(raw)
    except (YAMLError, ValidationError) as exc:
        raise RevisionUnreadable(f"playbook revision {revision_id}: cannot be read for the report: {exc}") from exc
    return PlaybookFacts(
        playbook_id=spec.id,
        title=spec.title,
        titles=dict(spec.titles),
        timezone=spec.timezone,
        participants=tuple(p.organisation for p in spec.participants),
        participant_fields=tuple((p.organisation, f) for p in spec.participants for f in p.fields),
        needed_channels=tuple(dict.fromkeys(s.channel for s in spec.initial_steps())),
        targets_ms={ch: int(d.total_seconds() * 1000) for ch, d in spec.targets.items()},
        rules=spec.fact_rules(),
        step_channels={s.id: s.channel for s in spec.steps},
        step_templates={s.id: s.template for s in spec.steps},
    )
