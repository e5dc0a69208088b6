"""The text of one ping, rendered from the run's playbook revision in the contact's language."""
from __future__ import annotations

from datetime import datetime

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
) -> RenderedMessage:
    context = MessageContext(
        organisation=OrganisationRef(code=organisation_code, name=organisation_name),
        contact=ContactRef(name=contact_name, field=field_code),
        playbook=PlaybookRef(id=spec.id, title=spec.title),
        run=RunRef(id=run_id),
        channel=step.channel,
        language=language,
        ack_url=ack_url,
        ack_code=ack_code,
        deadline=format_deadline(deadline_at, timezone, language),
        deadline_minutes=int(step.ack_deadline.total_seconds() // 60),
        test_kind="announced" if announced else "unannounced",
        sender=sender,
        test_at=format_deadline(test_at, timezone, language) if test_at else "",
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
) -> RenderedMessage:
    """The announcement of an announced test: the same variables as a ping, with ``test_at``
    the planned moment and no acknowledgement link (there is nothing to acknowledge yet)."""
    context = MessageContext(
        organisation=OrganisationRef(code=organisation_code, name=organisation_name),
        contact=ContactRef(name=contact_name, field=field_code),
        playbook=PlaybookRef(id=spec.id, title=spec.title),
        run=RunRef(id=run_id),
        channel="email",
        language=language,
        ack_url="",
        ack_code="",
        deadline="",
        deadline_minutes=0,
        test_kind="announced",
        sender=sender,
        test_at=format_deadline(test_at, timezone, language),
    )
    return render_message(spec, template, language, context)
