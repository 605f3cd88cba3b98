"""``python -m whoopadmin.sandbox``: the same as ``whoopadmin sandbox``."""

from .cli import sandbox_command

if __name__ == "__main__":
    sandbox_command(prog_name="whoopadmin sandbox")
