"""Test doubles for the HK AI Pulse bot (a local fake of the Telegram Bot API server)."""

from .fake_bot_api import (
    FILE_DOWNLOAD,
    FakeBotApi,
    RecordedRequest,
    UploadedFile,
    missing_required_fields,
    parse_html,
    spec_return_type,
    spec_version,
)

__all__ = [
    "FILE_DOWNLOAD",
    "FakeBotApi",
    "RecordedRequest",
    "UploadedFile",
    "missing_required_fields",
    "parse_html",
    "spec_return_type",
    "spec_version",
]
