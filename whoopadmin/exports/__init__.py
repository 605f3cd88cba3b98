"""Exports of one user's stored data: CSV (a zip), NDJSON and FHIR R4 (streamed)."""
