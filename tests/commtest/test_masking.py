"""Phone numbers, addresses and tokens never appear whole in logs and events (CONVENTIONS.md rule 9)."""
from __future__ import annotations

import pytest

from commtest.masking import mask_address, mask_in_text


def test_an_e164_number_and_an_email_address_keep_only_their_ends() -> None:
    assert mask_address("+3225550110") == "+32*****110"
    assert mask_address("permanence@nccn.example") == "p***@nccn.example"


@pytest.mark.parametrize("written", [
    "+32 2 555 01 10",  # as the sample directory writes it
    "+32-2-555-01-10",
    "+32.2.555.01.10",
    "+32 2 5550110",
    "+31 70 555 0110",
    "+352 2478 5510",
])
def test_a_phone_number_written_with_spaces_or_dashes_is_masked_in_free_text(written: str) -> None:
    masked = mask_in_text(f"voicemail reported by the provider for a call to {written} at 10:26")
    digits = "".join(c for c in written if c.isdigit())
    assert written not in masked and digits not in masked.replace(" ", "")
    assert f"to {mask_address('+' + digits)} at 10:26" in masked  # the last three digits stay readable
    assert masked.startswith("voicemail reported by the provider for a call to +3")


def test_masking_free_text_leaves_times_offsets_and_short_numbers_alone() -> None:
    text = "550 5.1.1 user unknown at 2026-03-17T09:12:00+01:00, attempt 2 of 3, code 123456"
    assert mask_in_text(text) == text


def test_an_address_and_a_compact_number_in_the_same_text_are_both_masked() -> None:
    masked = mask_in_text("bounce for desk@ncc.example; sms to +31655500110 failed")
    assert masked == "bounce for d***@ncc.example; sms to +31******110 failed"
