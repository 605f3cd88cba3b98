"""Staff accounts: sign-in, roles and staff management."""
