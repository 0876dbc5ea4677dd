"""HK AI Pulse: a Telegram bot with curated, sourced news and digests on Hong Kong's AI ecosystem."""
