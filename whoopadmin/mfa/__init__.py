"""Two-factor sign-in: TOTP authenticators and single-use recovery codes."""
