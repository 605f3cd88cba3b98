"""Single sign-on for staff with OpenID Connect (authlib)."""
