"""The Telegram front end (named `tg` so it cannot shadow the `telegram` library)."""
