"""WSGI entry point: ``gunicorn wsgi:app``."""

from whoopadmin import create_app

app = create_app()
