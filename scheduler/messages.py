"""The text of one ping (or announcement), rendered from the run's playbook revision in the
contact's language: the organisation's name, the sender's and the playbook's title in that
language too when the directory and the playbook give one (``names``, ``titles``)."""
from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Literal

from playbooks.schema import PlaybookSpec, StepSpec
from playbooks.templates import (
    ContactRef,
    MessageContext,
    OrganisationRef,
    PlaybookRef,
    RenderedMessage,
    RunRef,
    format_deadline,
    render_message,
    template_language,
)


def in_language(default: str, names: Mapping[str, str] | None, language: str) -> str:
    """A name given per language (``{fr: ...}``; ``nl-BE`` reads ``nl``), else as written."""
    names = names or {}
    return names.get(language) or names.get(language.split("-")[0]) or default


def _context(
    spec: PlaybookSpec, *, run_id: int, organisation_code: str, organisation_name: str, contact_name: str,
    field_code: str, language: str, timezone: str, channel: str, ack_url: str, ack_code: str,
    deadline_at: datetime | None, deadline_minutes: int, test_kind: Literal["announced", "unannounced"],
    sender: str, test_at: datetime | None, organisation_names: Mapping[str, str] | None,
    sender_names: Mapping[str, str] | None, text_language: str,
) -> MessageContext:
    # ``language`` is the contact's (a template may branch on it); the names and the title are
    # those of the language the text is written in, so that they read as part of it.
    return MessageContext(
        organisation=OrganisationRef(code=organisation_code,
                                     name=in_language(organisation_name, organisation_names, text_language)),
        contact=ContactRef(name=contact_name, field=field_code),
        playbook=PlaybookRef(id=spec.id, title=spec.title_in(text_language)),
        run=RunRef(id=run_id),
        channel=channel,
        language=language,
        ack_url=ack_url,
        ack_code=ack_code,
        deadline=format_deadline(deadline_at, timezone, language) if deadline_at else "",
        deadline_minutes=deadline_minutes,
        test_kind=test_kind,
        sender=in_language(sender, sender_names, text_language),
        test_at=format_deadline(test_at, timezone, language) if test_at else "",
    )


def render_ping(
    spec: PlaybookSpec,
    step: StepSpec,
    *,
    run_id: int,
    announced: bool,
    organisation_code: str,
    organisation_name: str,
    contact_name: str,
    field_code: str,
    language: str,
    timezone: str,
    ack_url: str,
    ack_code: str,
    deadline_at: datetime,
    sender: str,
    test_at: datetime | None = None,
    organisation_names: Mapping[str, str] | None = None,
    sender_names: Mapping[str, str] | None = None,
) -> RenderedMessage:
    """``organisation_names`` and ``sender_names`` are the directory's names per language: the
    message uses the one of the language its template is written in."""
    context = _context(
        spec, run_id=run_id, organisation_code=organisation_code, organisation_name=organisation_name,
        contact_name=contact_name, field_code=field_code, language=language, timezone=timezone,
        channel=step.channel, ack_url=ack_url, ack_code=ack_code, deadline_at=deadline_at,
        deadline_minutes=int(step.ack_deadline.total_seconds() // 60),
        test_kind="announced" if announced else "unannounced", sender=sender, test_at=test_at,
        organisation_names=organisation_names, sender_names=sender_names,
        text_language=template_language(spec, step.template, language),
    )
    return render_message(spec, step.template, language, context)


def render_announcement(
    spec: PlaybookSpec,
    template: str,
    *,
    run_id: int,
    organisation_code: str,
    organisation_name: str,
    contact_name: str,
    field_code: str,
    language: str,
    timezone: str,
    test_at: datetime,
    sender: str,
    organisation_names: Mapping[str, str] | None = None,
    sender_names: Mapping[str, str] | None = None,
) -> RenderedMessage:
    """The announcement of an announced test: the same variables as a ping, with ``test_at``
    the planned moment and no acknowledgement link (there is nothing to acknowledge yet)."""
    context = _context(
        spec, run_id=run_id, organisation_code=organisation_code, organisation_name=organisation_name,
        contact_name=contact_name, field_code=field_code, language=language, timezone=timezone,
        channel="email", ack_url="", ack_code="", deadline_at=None, deadline_minutes=0,
        test_kind="announced", sender=sender, test_at=test_at, organisation_names=organisation_names,
        sender_names=sender_names, text_language=template_language(spec, template, language),
    )
    return render_message(spec, template, language, context)
