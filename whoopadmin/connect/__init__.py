"""Connecting end users: connect sessions, the OAuth callback, and links."""
