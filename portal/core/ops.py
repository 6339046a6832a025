"""Operations plumbing: the readiness probe (`/readyz`) and structured JSON logs (docs/operations.md).

`/healthz` (core/headers.py) says "the process is up"; `/readyz` says "this node can serve": the database
answers `SELECT 1` and Redis answers PING (when REDIS_URL is set). Both are WSGI middleware answered before
Flask: no session, no cookie, no request hooks. A failing check answers 503 naming only which dependency
failed ("database", "redis"); the exception goes to the log, never into the response.

Logs: one JSON object per line (LOG_FORMAT=json, the production default) with time, level, logger, message
and the request id. Nothing here logs a query string, a header or a request body; the only request detail a
log line gets is the id (core/headers.py accepts a client's X-Request-ID only if it is a short safe token).
"""

from __future__ import annotations

import json
import logging
import time
import uuid

from portal.core.headers import HSTS, SECURITY_HEADERS

log = logging.getLogger("portal.ops")


class JSONFormatter(logging.Formatter):
    """{"ts": ..., "level": ..., "logger": ..., "msg": ..., "request_id": ..., "exc": ...} on one line."""

    def format(self, record: logging.LogRecord) -> str:
        out = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
            "request_id": getattr(record, "request_id", "-"),
        }
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out, ensure_ascii=False, default=str)


class ReadyCheck:
    """WSGI middleware answering GET /readyz: 200 when the database and Redis answer, else 503."""

    def __init__(self, wsgi_app, flask_app, path: str = "/readyz", hsts: bool = False):
        self.wsgi_app = wsgi_app
        self.flask_app = flask_app
        self.path = path
        self.headers = [("Content-Type", "application/json"), ("Cache-Control", "no-store"), *SECURITY_HEADERS,
                        *([HSTS] if hsts else [])]
        self._redis = None

    def check_database(self) -> bool:
        from portal.extensions import db

        try:
            with self.flask_app.app_context():
                # The DBAPI connection, not a SQLAlchemy transaction: no BEGIN (IMMEDIATE, on SQLite) to wait on.
                raw = db.engine.raw_connection()
                try:
                    cur = raw.cursor()
                    cur.execute("SELECT 1")
                    cur.fetchall()
                    cur.close()
                finally:
                    raw.close()  # back to the pool, rolled back
            return True
        except Exception as exc:  # any driver error: not ready
            log.warning("readyz: database unreachable (%s)", type(exc).__name__)
            return False

    def check_redis(self) -> bool | None:
        url = self.flask_app.config.get("REDIS_URL")
        if not url:
            return None  # not configured (development): nothing to check
        try:
            if self._redis is None:
                import redis

                self._redis = redis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=1)
            return bool(self._redis.ping())
        except Exception as exc:
            log.warning("readyz: redis unreachable (%s)", type(exc).__name__)
            return False

    def __call__(self, environ, start_response):
        if environ.get("PATH_INFO") != self.path or environ.get("REQUEST_METHOD") not in ("GET", "HEAD"):
            return self.wsgi_app(environ, start_response)
        db_ok, redis_ok = self.check_database(), self.check_redis()
        body = {"database": "ok" if db_ok else "unreachable",
                "redis": {True: "ok", False: "unreachable", None: "not configured"}[redis_ok]}
        ready = db_ok and redis_ok is not False
        body["status"] = "ready" if ready else "unavailable"
        data = json.dumps(body, sort_keys=True).encode()
        start_response("200 OK" if ready else "503 Service Unavailable",
                       self.headers + [("Content-Length", str(len(data))), ("X-Request-ID", uuid.uuid4().hex)])
        return [data] if environ["REQUEST_METHOD"] == "GET" else []
