"""The WHOOP client: OAuth, API v2 and normalisation. No Flask here."""

SCOPES = (
    "offline",
    "read:profile",
    "read:body_measurement",
    "read:cycles",
    "read:recovery",
    "read:sleep",
    "read:workout",
)
