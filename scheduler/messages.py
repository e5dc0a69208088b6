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
    )
    return render_message(spec, step.template, language, context)
