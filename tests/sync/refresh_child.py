"""Run in a separate process by the refresh race test: refresh one link, print the outcome."""

import sys


def refresh_in_process(config: dict, link_id: int, version: int, start_at: float, out) -> None:
    """Build an app on the same database and Redis, wait for the start signal, refresh."""
    import time

    from whoopadmin import create_app
    from whoopadmin.sync.tokens import RefreshFailed, refresh_link

    app = create_app(config)
    with app.app_context():
        time.sleep(max(0.0, start_at - time.time()))
        try:
            out.put(refresh_link(link_id, "race-process", seen_version=version))
        except RefreshFailed as exc:
            out.put(f"failed: {exc}")
        except Exception as exc:  # report, don't hang the parent
            out.put(f"error: {type(exc).__name__}: {exc}")
    sys.stdout.flush()
