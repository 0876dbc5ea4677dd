"""Settings from config and environment, and a token that never reaches a log."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from bot.logs import RedactSecrets
from bot.settings import Secret, SettingsError, load_settings

TOKEN = "987654:AAE-secret-token-value"


def test_defaults_without_file_or_environment(tmp_path: Path) -> None:
    settings = load_settings(tmp_path / "none.yaml", {})
    assert settings.console_mode and settings.timezone == "Asia/Hong_Kong"
    assert settings.telegram_api_url == "https://api.telegram.org"


def test_shipped_config_file_loads() -> None:
    settings = load_settings(Path(__file__).parent.parent / "config" / "settings.yaml", {})
    assert settings.database_url == "sqlite:///data/bot.sqlite3" and settings.admin_ids == frozenset()


def test_environment_overrides_file(tmp_path: Path) -> None:
    config = tmp_path / "settings.yaml"
    config.write_text("admin_ids: [1]\ntimezone: Europe/London\n")
    settings = load_settings(config, {"BOT_ADMIN_IDS": "7, 8", "TELEGRAM_BOT_TOKEN": TOKEN,
                                      "TELEGRAM_API_URL": "http://127.0.0.1:8081/"})
    assert settings.admin_ids == frozenset({7, 8}) and settings.timezone == "Europe/London"
    assert settings.telegram_api_url == "http://127.0.0.1:8081" and not settings.console_mode


def test_candidates_expire_after_fourteen_days_unless_configured(tmp_path: Path) -> None:
    config = tmp_path / "settings.yaml"
    config.write_text("candidate_expiry_days: 30\n")
    assert load_settings(tmp_path / "none.yaml", {}).candidate_expiry_days == 14
    assert load_settings(config, {}).candidate_expiry_days == 30
    assert load_settings(config, {"CANDIDATE_EXPIRY_DAYS": "0"}).candidate_expiry_days == 0
    with pytest.raises(SettingsError, match="CANDIDATE_EXPIRY_DAYS"):
        load_settings(config, {"CANDIDATE_EXPIRY_DAYS": "-1"})


def test_sources_are_watched_unless_watch_sources_is_false(tmp_path: Path) -> None:
    config = tmp_path / "settings.yaml"
    config.write_text("watch_sources: false\n")
    assert load_settings(tmp_path / "none.yaml", {}).watch_sources
    assert not load_settings(config, {}).watch_sources
    assert load_settings(config, {"WATCH_SOURCES": "true"}).watch_sources
    with pytest.raises(SettingsError, match="WATCH_SOURCES"):
        load_settings(config, {"WATCH_SOURCES": "maybe"})


def test_the_operators_contact_comes_from_the_file_or_bot_contact(tmp_path: Path) -> None:
    config = tmp_path / "settings.yaml"
    config.write_text("contact: ops@example.org\n")
    assert load_settings(config, {}).contact == "ops@example.org"
    assert load_settings(config, {"BOT_CONTACT": " @hk_ai_pulse_ops "}).contact == "@hk_ai_pulse_ops"
    assert load_settings(tmp_path / "none.yaml", {}).contact == ""


@pytest.mark.parametrize(("environ", "message"), [
    ({"BOT_ADMIN_IDS": "alice"}, "must be Telegram user ids"),
    ({"BOT_TIMEZONE": "Mars/Olympus"}, "unknown IANA timezone"),
    ({"TELEGRAM_API_URL": "ftp://x"}, r"must be an http\(s\) URL"),
    ({"LOG_LEVEL": "LOUD"}, "LOG_LEVEL"),
])
def test_bad_values_are_clear_errors(tmp_path: Path, environ: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        load_settings(tmp_path / "none.yaml", environ)


def test_token_in_a_config_file_is_refused(tmp_path: Path) -> None:
    config = tmp_path / "settings.yaml"
    config.write_text(f"telegram_token: {TOKEN}\n")
    with pytest.raises(SettingsError, match="TELEGRAM_BOT_TOKEN") as caught:
        load_settings(config, {})
    assert TOKEN not in str(caught.value)


def test_token_never_shows_in_repr() -> None:
    settings = load_settings(Path("/nonexistent"), {"TELEGRAM_BOT_TOKEN": TOKEN})
    assert TOKEN not in repr(settings) and TOKEN not in str(settings.telegram_token)
    assert settings.telegram_token.reveal() == TOKEN


def test_log_lines_are_redacted(caplog: pytest.LogCaptureFixture) -> None:
    logger = logging.getLogger("test.redaction")
    caplog.handler.addFilter(RedactSecrets([Secret(TOKEN)]))
    logger.warning("POST https://api.telegram.org/bot%s/getMe failed", TOKEN)
    try:
        raise RuntimeError(f"boom at /bot{TOKEN}/sendMessage")
    except RuntimeError:
        logger.exception("request failed")
    assert TOKEN not in caplog.text
    assert "/bot[redacted]/getMe" in caplog.text


def test_slack_runs_in_socket_mode_with_both_tokens_and_in_http_mode_with_the_signing_secret(tmp_path: Path) -> None:
    none = tmp_path / "none.yaml"
    socket = load_settings(none, {"SLACK_BOT_TOKEN": "xoxb-1", "SLACK_APP_TOKEN": "xapp-1"})
    assert socket.slack_socket_mode and not socket.slack_http_mode and not socket.console_mode
    http = load_settings(none, {"SLACK_BOT_TOKEN": "xoxb-1", "SLACK_SIGNING_SECRET": "abc",
                                "WEBHOOK_URL": "https://bot.example/telegram"})
    assert http.slack_http_mode and not http.slack_socket_mode and not http.webhook_mode  # no Telegram token
    assert not load_settings(none, {"SLACK_BOT_TOKEN": "xoxb-1"}).slack  # neither mode: console
    assert load_settings(none, {}).console_mode
    assert "xoxb" not in repr(socket) and "xapp" not in repr(socket)


def test_slack_admin_ids_must_be_slack_user_ids(tmp_path: Path) -> None:
    settings = load_settings(tmp_path / "none.yaml", {"SLACK_ADMIN_IDS": "U0123ABC, W0456DEF"})
    assert settings.slack_admin_ids == frozenset({"U0123ABC", "W0456DEF"})
    with pytest.raises(SettingsError, match="Slack user ids"):
        load_settings(tmp_path / "none.yaml", {"SLACK_ADMIN_IDS": "12345"})


def test_slack_tokens_may_not_be_written_in_the_config_file(tmp_path: Path) -> None:
    config = tmp_path / "settings.yaml"
    config.write_text("slack_bot_token: xoxb-1\n")
    with pytest.raises(SettingsError, match="slack_bot_token"):
        load_settings(config, {})
