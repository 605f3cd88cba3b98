"""The JSON API for operators' backends, and the API keys that guard it."""
