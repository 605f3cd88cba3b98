"""Server-side staff sessions: the cookie names a row that sign-out and admins can end."""
