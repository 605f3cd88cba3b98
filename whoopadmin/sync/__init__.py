"""Syncing WHOOP data: raw records, normalised indicators, backfills and reconciliation."""
