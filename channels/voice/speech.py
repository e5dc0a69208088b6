"""Which language and text-to-speech voice a call speaks.

The ping's language first, then the contact's other languages in order (the engine renders
the message in each: ``OutgoingPing.alternatives``): the first one Twilio can speak wins.
No text-to-speech has Luxembourgish, so a Luxembourgish-first desk hears its next
language (French or German). The organisation's country picks the accent where it
matters (French in Belgium); Dutch-speaking Belgium hears nl-NL, which every voice engine
has and every Flemish officer understands.

``COMMTEST_TWILIO_VOICES`` overrides the table: ``{"fr-BE": "fr-BE:Polly.Isabelle-Neural"}``
(a language, or language-COUNTRY, to ``language-code:voice``).
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from channels.base import OutgoingPing
from commtest.errors import ChannelError

__all__ = ["SPEECH", "Speech", "choose_speech", "parse_voice"]

# language, or language-COUNTRY (the organisation's country) -> (Twilio language code, voice)
SPEECH: dict[str, tuple[str, str]] = {
    "nl": ("nl-NL", "Polly.Lotte"),
    "fr": ("fr-FR", "Polly.Celine"),
    "fr-BE": ("fr-BE", "Polly.Isabelle-Neural"),
    "de": ("de-DE", "Polly.Marlene"),
    "en": ("en-GB", "Polly.Amy"),
}


@dataclass(frozen=True)
class Speech:
    """What the call says and how: ``language`` is the text's (and the prompts') language,
    ``code`` and ``voice`` are Twilio's ``<Say language=... voice=...>``."""

    language: str
    code: str
    voice: str
    text: str


def parse_voice(value: str) -> tuple[str, str]:
    """``"fr-BE:Polly.Isabelle-Neural"`` -> ``("fr-BE", "Polly.Isabelle-Neural")``."""
    code, sep, voice = value.partition(":")
    if not sep or len(code) != 5 or code[2] != "-" or not voice:
        raise ValueError(f"{value!r}: expected 'language-code:voice', e.g. 'fr-BE:Polly.Isabelle-Neural'")
    return code, voice


def _table(overrides: Mapping[str, str]) -> dict[str, tuple[str, str]]:
    table = dict(SPEECH)
    for key, value in overrides.items():
        table[key] = parse_voice(value)
    return table


def _lookup(table: Mapping[str, tuple[str, str]], language: str, country: str) -> tuple[str, str] | None:
    base = language.replace("_", "-").split("-")[0].lower()
    region = country[:2].upper()
    for key in (f"{base}-{region}" if region else "", language, base):
        if key and key in table:
            return table[key]
    return None


def choose_speech(ping: OutgoingPing, overrides: Mapping[str, str] | None = None) -> Speech:
    table = _table(overrides or {})
    candidates = [(ping.language, ping.body), *((alt.language, alt.body) for alt in ping.alternatives)]
    for language, text in candidates:
        found = _lookup(table, language, ping.country)
        if found is not None:
            return Speech(language=language, code=found[0], voice=found[1], text=text)
    tried = ", ".join(language for language, _ in candidates)
    raise ChannelError(f"no text-to-speech voice for any language of this contact ({tried}); add one to "
                       "COMMTEST_TWILIO_VOICES or a language to the voice template", permanent=False,
                       code="no-voice-language")
