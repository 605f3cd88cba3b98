"""The dashboard home page and the health endpoints."""
