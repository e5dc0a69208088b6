"""The TwiML of a test call, built with the SDK's ``VoiceResponse``.

The call says the playbook's message (the voice template's body) in the chosen language,
then asks for a key (the prompts are officer-catalogue texts, in the same language)::

    <Gather numDigits="1" action=".../gather?...">  message, "press 1 ..."  </Gather>
    "we did not hear a key"                       (silence: the message once more)
    <Gather numDigits="1" action=".../gather?...">  message, "press 1 ..."  </Gather>
    "goodbye" <Hangup/>

A key pressed goes to the gather webhook: 1 acknowledges (method ``keypress``); any other
key repeats the message (at most ``MAX_REPEATS`` times). Silence needs no webhook: a
``<Gather>`` without input falls through to the next verb. The gather URL carries the
spoken text (compressed, signed with the rest of the URL by Twilio), so a repeat says
exactly what the first time said, on whichever replica answers, without a database row.
"""
from __future__ import annotations

import base64
import json
import zlib

from twilio.twiml.voice_response import VoiceResponse

from channels.voice.speech import Speech
from commtest.i18n import Texts

__all__ = ["GATHER_TIMEOUT_S", "MAX_REPEATS", "MAX_TWIML", "answer_twiml", "call_twiml", "pack_speech",
           "unpack_speech"]

GATHER_TIMEOUT_S = 6  # seconds of silence after the prompt before the next verb
MAX_REPEATS = 3  # repeats after a wrong key before saying goodbye
MAX_TWIML = 4000  # Twilio refuses longer inline TwiML (error 32018)
_MAX_PACKED = 6000


def pack_speech(speech: Speech) -> str:
    raw = json.dumps({"l": speech.language, "c": speech.code, "v": speech.voice, "t": speech.text},
                     separators=(",", ":"), ensure_ascii=False).encode()
    return base64.urlsafe_b64encode(zlib.compress(raw, 9)).decode().rstrip("=")


def unpack_speech(packed: str) -> Speech | None:
    """The speech a gather URL carries; None when it is not ours (bounded: never a zip bomb)."""
    if not packed or len(packed) > _MAX_PACKED:
        return None
    try:
        data = base64.urlsafe_b64decode(packed + "=" * (-len(packed) % 4))
        inflater = zlib.decompressobj()
        raw = inflater.decompress(data, 4 * _MAX_PACKED)
        if inflater.unconsumed_tail:
            return None
        value = json.loads(raw.decode())
        return Speech(language=str(value["l"]), code=str(value["c"]), voice=str(value["v"]), text=str(value["t"]))
    except (ValueError, KeyError, TypeError, zlib.error):
        return None


def _texts(speech: Speech) -> Texts:
    return Texts("officer", speech.language)


def _say(node: VoiceResponse, speech: Speech, text: str) -> None:
    node.say(text, voice=speech.voice, language=speech.code)


def _ask(response: VoiceResponse, speech: Speech, gather_url: str) -> None:
    t = _texts(speech)
    gather = response.gather(input="dtmf", num_digits=1, timeout=GATHER_TIMEOUT_S, action=gather_url, method="POST")
    gather.say(speech.text, voice=speech.voice, language=speech.code)
    gather.say(t("Press 1 to confirm that you received this call."), voice=speech.voice, language=speech.code)


def _message_twice(response: VoiceResponse, speech: Speech, gather_url: str) -> None:
    t = _texts(speech)
    _ask(response, speech, gather_url)
    _say(response, speech, t("We did not hear a key. Here is the message once more."))
    _ask(response, speech, gather_url)
    _say(response, speech, t("We did not receive a confirmation. Goodbye."))
    response.hangup()


def call_twiml(speech: Speech, gather_url: str) -> str:
    """The inline TwiML of the call (``Calls.create(twiml=...)``)."""
    response = VoiceResponse()
    _message_twice(response, speech, gather_url)
    return str(response)


def answer_twiml(speech: Speech | None, outcome: str, gather_url: str = "") -> str:
    """What the gather webhook answers. ``outcome``: ``acked`` (thanks), ``closed`` (thanks,
    the test had closed), ``repeat`` (another key: the message again), ``goodbye``."""
    response = VoiceResponse()
    if speech is None:
        response.hangup()
        return str(response)
    t = _texts(speech)
    if outcome == "acked":
        _say(response, speech, t("Thank you, your confirmation has been recorded. Goodbye."))
    elif outcome == "closed":
        _say(response, speech, t("Thank you. This test has already closed, but your answer has been noted. Goodbye."))
    elif outcome == "repeat":
        _say(response, speech, t("That was not the 1 key. Here is the message again."))
        _message_twice(response, speech, gather_url)
        return str(response)
    else:
        _say(response, speech, t("We did not receive a confirmation. Goodbye."))
    response.hangup()
    return str(response)
