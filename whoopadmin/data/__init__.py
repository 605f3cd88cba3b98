"""The data API (issue 17): stored records, daily summaries, sync status, backfill progress."""
