"""Erasing one user's data on request, after a grace period an operator can undo it in."""
