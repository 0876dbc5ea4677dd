"""Watching official sources: fetch feeds, parse them, pick the items about AI (see content/sources.yaml)."""
