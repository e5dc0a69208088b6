"""A framed acknowledgement page is byte for byte what Jinja2 renders in full, in every
language and kind of page, hostile values included."""
from __future__ import annotations

import itertools
from datetime import datetime, timezone

import pytest

from commtest.vocabulary import CHANNELS
from scheduler.acks import TokenInfo
from web.ack_frames import Frame, done_frame, form_frame
from web.pages import LANGUAGES, TEMPLATES, page_context, texts

HOSTILE = '<script>alert("x")</script> & \'quoted\' Ümlaut'
BASE = "/ack/" + "A" * 43


def _info(org: str, contact: str) -> TokenInfo:
    at = datetime(2026, 4, 14, 8, 15, tzinfo=timezone.utc)
    return TokenInfo(ping_id=1, run_id=1, token_hash="h", channel="email", language="nl", timezone="Europe/Brussels",
                     organisation_code="XA-01", organisation_name=org, contact_name=contact, sent_at=at,
                     deadline_at=at, expires_at=None, acked_at=None, contact_languages=(), organisation_languages=(),
                     run_status="running", run_finished_at=None, organisation_names={"fr": org + " (fr)"})


@pytest.mark.parametrize("language", LANGUAGES)
def test_every_form_frame_filled_is_the_full_render(language: str) -> None:
    from commtest.vocabulary import name_of

    for channel, closed, called_off in itertools.product(sorted(CHANNELS), (False, True), (False, True)):
        for org, contact in (("Centre One", "Centre One desk"), (HOSTILE, HOSTILE + "&amp;")):
            info = _info(org, contact)
            values = (info.organisation_in(language), contact, "14 Apr 2026, 10:15 CEST", "<deadline>", "1.a&b", BASE)
            full = TEMPLATES.get_template("ack.html").render(page_context(
                language, switch_base=BASE, info=info, channel_name=name_of("channel", channel, texts(language)),
                sent=values[2], deadline=values[3], csrf=values[4], action=f"{BASE}?lang={language}",
                closed=closed, called_off=called_off, video=None))
            assert form_frame(language, channel, closed, called_off).fill(values) == full.encode()
            assert "<script>" not in full


@pytest.mark.parametrize("language", LANGUAGES)
def test_every_thank_you_frame_filled_is_the_full_render(language: str) -> None:
    t = texts(language)
    for late in (False, True):
        full = TEMPLATES.get_template("done.html").render(page_context(
            language, title=t("Thank you: receipt confirmed"), when=HOSTILE, duration="2 min 5 s", late=late))
        assert done_frame(language, late).fill((HOSTILE, "2 min 5 s")) == full.encode()


def test_a_template_that_changes_a_value_cannot_be_framed() -> None:
    upper = TEMPLATES.env.from_string("<p>{{ a | upper }}</p><p>{{ b }}</p>").render(a="\ue000slot0\ue001", b="\ue000slot1\ue001")
    with pytest.raises(RuntimeError, match="cannot be framed"):
        Frame.of(upper, ("a", "b"))
    dropped = TEMPLATES.env.from_string("<p>{{ b }}</p>").render(b="\ue000slot1\ue001")
    with pytest.raises(RuntimeError, match=r"\['a'\]"):
        Frame.of(dropped, ("a", "b"))


def test_a_frame_of_one_value_or_none_fills_as_well_and_a_percent_sign_stays_as_it_is() -> None:
    assert Frame(("100% <b>",), ()).fill(()) == b"100% <b>"
    assert Frame(("<p>", "%s</p>"), (0,)).fill(("50% & more",)) == b"<p>50% &amp; more%s</p>"
    assert Frame(("1", "2", "3"), (1, 0)).fill(("a", "b")) == b"1b2a3"
