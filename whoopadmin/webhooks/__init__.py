"""Inbound WHOOP webhooks: verified, stored before the 2xx, then processed by jobs."""
