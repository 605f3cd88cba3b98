"""Staff passwords: the strength policy, self-service change and one-time set-password links."""
