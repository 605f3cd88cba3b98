"""Deliveries: lifecycle and data events pushed, signed, to the operator's destination URLs."""
