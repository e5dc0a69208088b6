from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from commtest.errors import ConfigError
from commtest.settings import load_settings


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for key in list(os.environ):
        if key.startswith("COMMTEST_"):
            monkeypatch.delenv(key)


def test_defaults_use_the_embedded_sqlite_database() -> None:
    s = load_settings()
    assert s.database_url == "sqlite:///var/commtest.db"
    assert s.misfire_grace == timedelta(minutes=15)


def test_no_kind_defaults_to_the_sandbox_only_manual_has_its_coordinator() -> None:
    s = load_settings()
    assert s.sandbox is False
    assert s.channels == {"manual": ["coordinator"]}
    assert [s.channel_status(k) for k in ("email", "voice", "manual")] == ["not configured", "not configured", "real"]


def test_with_the_sandbox_on_every_unconfigured_kind_but_manual_uses_it() -> None:
    s = load_settings(sandbox=True, channels={"email": "smtp"})
    assert s.providers("email") == ["smtp"] and s.channel_status("email") == "real"
    assert s.providers("voice") == ["sandbox"] and s.channel_status("voice") == "sandbox"
    assert s.providers("manual") == ["coordinator"]


def test_naming_the_sandbox_without_asking_for_it_is_refused_with_what_to_do() -> None:
    with pytest.raises(ConfigError) as err:
        load_settings(channels={"voice": "sandbox"})
    assert "COMMTEST_SANDBOX=true" in str(err.value) and "voice" in str(err.value)


def test_a_kind_may_list_providers_in_failover_order_and_a_manual_sandbox_is_refused() -> None:
    s = load_settings(channels={"voice": ["twilio", "twilio-backup"]})
    assert s.providers("voice") == ["twilio", "twilio-backup"]
    with pytest.raises(ConfigError) as err:
        load_settings(sandbox=True, channels={"manual": "sandbox"})
    assert "coordinator" in str(err.value)


def test_environment_overrides_the_toml_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = tmp_path / "commtest.toml"
    cfg.write_text('web_port = 9000\ntimezone = "Europe/Amsterdam"\n')
    monkeypatch.setenv("COMMTEST_CONFIG", str(cfg))
    monkeypatch.setenv("COMMTEST_WEB_PORT", "9100")
    s = load_settings()
    assert s.web_port == 9100
    assert s.timezone == "Europe/Amsterdam"


def test_a_secret_in_the_toml_file_is_refused_with_what_to_do(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = tmp_path / "commtest.toml"
    cfg.write_text('smtp_password = "hunter2"\n')
    monkeypatch.setenv("COMMTEST_CONFIG", str(cfg))
    with pytest.raises(ConfigError) as err:
        load_settings()
    assert "smtp_password" in str(err.value)
    assert "COMMTEST_SMTP_PASSWORD" in str(err.value)
    assert "hunter2" not in str(err.value)


def test_a_secret_can_come_from_a_file_named_in_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    secret = tmp_path / "token"
    secret.write_text("s3cr3t\n")
    monkeypatch.setenv("COMMTEST_SMTP_PASSWORD_FILE", str(secret))
    s = load_settings()
    assert s.smtp_password is not None
    assert s.smtp_password.get_secret_value() == "s3cr3t"
    assert s.masked()["smtp_password"] == "********"


def test_an_unknown_time_zone_names_the_variable() -> None:
    with pytest.raises(ConfigError) as err:
        load_settings(timezone="Europe/Atlantis")
    assert "COMMTEST_TIMEZONE" in str(err.value)
    assert "Europe/Atlantis" in str(err.value)


def test_postgres_urls_get_the_psycopg_driver_and_mask_the_password() -> None:
    s = load_settings(database_url="postgresql://app:pw@db.example:5432/commtest")
    assert s.database_url.startswith("postgresql+psycopg://")
    assert "pw" not in s.masked()["database_url"]


def test_check_config_masks_passwords_in_any_part_of_a_url() -> None:
    s = load_settings(database_url="postgresql://db.example/commtest?user=u&password=qsecret",
                      public_base_url="https://u:pw@commtest.example/")
    masked = s.masked()
    assert "qsecret" not in masked["database_url"] and "password=********" in masked["database_url"]
    assert "pw@" not in masked["public_base_url"] and "u:********@" in masked["public_base_url"]


@pytest.mark.parametrize("url", [
    "sqlite:////tmp/x",
    "sqlite:///var/lib/commtest/commtest.db",
    "sqlite:///commtest.db",
    "sqlite://",
    "postgresql+psycopg://db.example:5432/commtest?sslmode=require",
    "https://commtest.example/base/",
])
def test_masking_a_url_without_a_password_prints_it_exactly_as_written(url: str) -> None:
    from commtest.settings import mask_url

    assert mask_url(url) == url


@pytest.mark.parametrize("url, shown", [
    ("postgresql+psycopg://app:pw@db.example:5432/commtest", "postgresql+psycopg://app:********@db.example:5432/commtest"),
    ("postgresql+psycopg:///commtest?host=/run/pg&password=pw", "postgresql+psycopg:///commtest?host=/run/pg&password=********"),
    ("https://u:pw@commtest.example/#top", "https://u:********@commtest.example/#top"),
])
def test_masking_a_url_hides_its_password_and_keeps_the_rest(url: str, shown: str) -> None:
    from commtest.settings import mask_url

    assert mask_url(url) == shown


def test_check_config_prints_a_sqlite_url_with_all_its_slashes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from click.testing import CliRunner

    from commtest.cli import cli

    url = f"sqlite:///{tmp_path / 'x.db'}"  # four slashes: an absolute path
    monkeypatch.setenv("COMMTEST_DATABASE_URL", url)
    result = CliRunner().invoke(cli, ["check-config"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    [line] = [line for line in result.output.splitlines() if line.startswith("database_url")]
    assert line.split()[-1] == url


def test_check_config_shows_durations_as_every_report_does(monkeypatch: pytest.MonkeyPatch) -> None:
    from click.testing import CliRunner

    from commtest.cli import cli

    monkeypatch.setenv("COMMTEST_MISFIRE_GRACE", "PT15M")
    result = CliRunner().invoke(cli, ["check-config"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    shown = {line.split(None, 1)[0]: line.split(None, 1)[1] for line in result.output.splitlines()
             if line and not line.startswith(" ") and len(line.split(None, 1)) == 2}
    assert (shown["misfire_grace"], shown["video_join_grace"]) == ("15 min", "1 h 00 min")
    assert "0:15:00" not in result.output and "7 days" not in result.output


def test_an_unknown_key_in_the_toml_file_names_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = tmp_path / "commtest.toml"
    cfg.write_text("bogus = 1\n")
    monkeypatch.setenv("COMMTEST_CONFIG", str(cfg))
    with pytest.raises(ConfigError) as err:
        load_settings()
    assert f"{cfg}: bogus: unknown setting" in str(err.value)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"a = " + b"[" * 100_000 + b"1" + b"]" * 100_000 + b"\n",
         "not valid TOML: values nested too deeply; a commtest configuration needs two levels at most"),
        (b"\xff\xfe\x00w", "not UTF-8 text (byte 0); save it as UTF-8"),
        (b"commtest = 3\n", "commtest: expected a table ([commtest]) of settings"),
        (b"# padding\n" * 120_000, "a configuration file may be at most 1 MiB; this one is larger and was not read"),
    ],
    ids=["nested", "binary", "not-a-table", "too-large"],
)
def test_a_hostile_configuration_file_is_a_config_error_naming_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, content: bytes, message: str
) -> None:
    cfg = tmp_path / "commtest.toml"
    cfg.write_bytes(content)
    monkeypatch.setenv("COMMTEST_CONFIG", str(cfg))
    with pytest.raises(ConfigError) as err:
        load_settings()
    assert str(err.value) == f"{cfg}: {message}"


def test_the_file_limits_are_settings_with_sensible_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    s = load_settings()
    assert (s.max_playbook_bytes, s.max_directory_bytes) == (1024 * 1024, 20 * 1024 * 1024)
    monkeypatch.setenv("COMMTEST_MAX_PLAYBOOK_BYTES", "2048")
    assert load_settings().max_playbook_bytes == 2048
    monkeypatch.setenv("COMMTEST_MAX_PLAYBOOK_BYTES", "10")
    with pytest.raises(ConfigError, match="COMMTEST_MAX_PLAYBOOK_BYTES: Input should be greater than or equal to 1024"):
        load_settings()


def test_a_time_zone_setting_that_is_a_folder_of_zones_is_a_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COMMTEST_TIMEZONE", "Europe")
    with pytest.raises(ConfigError, match="COMMTEST_TIMEZONE: Value error, unknown IANA time zone 'Europe'"):
        load_settings()
