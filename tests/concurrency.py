"""Helpers for races on a database with real commits (not the rolled-back per-test transaction).

    def test_twenty_bookings(committing_app):            # fixture in tests/conftest.py
        with live_http(committing_app) as base_url:       # the real HTTP stack (threaded server)
            results = race(20, lambda: requests.post(base_url + "/…", …))

`committing_app` is an app of its own on PostgreSQL (a fresh database, when TEST_DATABASE_URL is set)
or on a temporary SQLite file, migrated to head; what it commits is really committed.
"""

from __future__ import annotations

import contextlib
import threading

from tests.conftest import free_port


def race(n: int, fn, app=None, timeout: float = 60) -> list:
    """Run fn() in n threads released together by a barrier; returns their results (an exception
    is returned as the result). With `app`, each thread runs inside an app context."""
    barrier = threading.Barrier(n)
    results: list = []
    lock = threading.Lock()

    def run():
        ctx = app.app_context() if app is not None else contextlib.nullcontext()
        with ctx:
            barrier.wait()
            try:
                out = fn()
            except Exception as exc:  # noqa: BLE001 - the caller inspects it
                out = exc
            with lock:
                results.append(out)

    threads = [threading.Thread(target=run) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout)
    return results


@contextlib.contextmanager
def live_http(app):
    """Serve `app` on 127.0.0.1 with a threaded server (one thread per request, like gunicorn's
    workers take requests in parallel); yields the base URL."""
    from werkzeug.serving import WSGIRequestHandler, make_server

    class Quiet(WSGIRequestHandler):
        def log_request(self, *args, **kwargs):
            pass

    port = free_port()
    server = make_server("127.0.0.1", port, app, threaded=True, request_handler=Quiet)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.shutdown()
        thread.join(5)
