"""The single-value validators of the directory (no database)."""
from __future__ import annotations

from datetime import UTC, datetime

import pytest

from commtest.directory.schema import (
    EndpointIn,
    OrganisationIn,
    country_code,
    email_address,
    endpoint_address,
    instant,
    language_tag,
    phone_number,
    time_zone,
)


def test_luxembourgish_and_regional_tags_are_accepted_and_standardised() -> None:
    assert language_tag("lb") == "lb"
    assert language_tag("EN_gb") == "en-GB"


def test_an_unknown_language_is_refused_with_examples() -> None:
    with pytest.raises(ValueError, match="unknown language 'xx'; expected a BCP 47 tag"):
        language_tag("xx")


def test_a_time_zone_must_be_an_iana_name() -> None:
    assert time_zone("Europe/Luxembourg") == "Europe/Luxembourg"
    with pytest.raises(ValueError, match="unknown time zone 'CET/Brussels'"):
        time_zone("CET/Brussels")


def test_a_country_is_an_alpha2_code_or_a_subdivision() -> None:
    assert country_code("DE-NW") == "DE-NW"
    for bad in ("XX", "BEL", "de-nw"):
        with pytest.raises(ValueError, match="unknown country"):
            country_code(bad)


def test_a_national_phone_number_is_read_with_the_country_hint_and_stored_as_e164() -> None:
    assert phone_number("02 555 01 10", "BE") == "+3225550110"
    assert phone_number("+352 2478 5510", "BE") == "+35224785510"


def test_a_phone_number_that_is_not_valid_is_refused() -> None:
    with pytest.raises(ValueError, match="is not a valid phone number for BE"):
        phone_number("+32 2 555", "BE")
    with pytest.raises(ValueError, match="cannot read 'call me'"):
        phone_number("call me", "BE")


def test_example_addresses_are_valid_email_but_broken_ones_are_not() -> None:
    # email-validator refuses special-use domains; .example must stay allowed for the fictional data.
    assert email_address("permanence@nccn.example") == "permanence@nccn.example"
    with pytest.raises(ValueError, match="not a valid e-mail address"):
        email_address("permanence@@nccn.example")


def test_video_takes_http_urls_and_sip_uris_and_cap_takes_only_https() -> None:
    assert endpoint_address("video", "sip:room42@video.commtest.example", None).startswith("sip:")
    assert endpoint_address("video", "https://video.commtest.example/room/x", None).startswith("https://")
    with pytest.raises(ValueError, match="is not an http\\(s\\) URL or a SIP URI"):
        endpoint_address("video", "ftp://video.commtest.example/x", None)
    with pytest.raises(ValueError, match="is not an https URL"):
        endpoint_address("cap", "http://cap.commtest.example/feed", None)


def test_a_manual_endpoint_is_free_text() -> None:
    assert endpoint_address("manual", " radio: channel 5 ", None) == "radio: channel 5"


def test_an_instant_without_zone_is_utc_and_a_bare_date_is_refused() -> None:
    assert instant("2026-03-17T09:15:00") == datetime(2026, 3, 17, 9, 15, tzinfo=UTC)
    assert instant("2026-03-17T10:15:00+01:00") == datetime(2026, 3, 17, 9, 15, tzinfo=UTC)
    with pytest.raises(ValueError, match="is a date without a time"):
        instant(datetime(2026, 3, 17).date())


def test_an_endpoint_uses_the_region_from_its_context() -> None:
    ep = EndpointIn.model_validate({"kind": "sms", "address": "0470 55 01 10"}, context={"region": "BE"})
    assert ep.address == "+32470550110"
    assert ep.status is None and ep.verified_at is None  # unstated: merge keeps the database's


def test_an_organisation_region_comes_from_its_country() -> None:
    org = OrganisationIn(code="DE-NW-LZ", name="Lagezentrum", country="DE-NW", languages=["de"], timezone="Europe/Berlin")
    assert org.region == "DE"


def test_the_public_names_of_the_directory_package_exist() -> None:
    from commtest import directory

    assert {"import_directory", "export_directory", "snapshot", "check_directory", "resolve_contact_points"} <= set(
        directory.__all__
    )
    assert all(hasattr(directory, name) for name in directory.__all__)
