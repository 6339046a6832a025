"""Running in production (issue 12, issue 5 finding 11): /readyz, JSON logs with request ids and nothing
secret in them, production refusing weak settings, and the documented Celery command."""

from __future__ import annotations

import io
import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from config import ProductionConfig, TestingConfig
from portal import create_app

ROOT = Path(__file__).resolve().parents[2]
GOOD_FERNET = "q6K5dX0yq4b2Wl3VJ9lJrJx3f2h1QbQJd2c8Yk9b0m4="
GOOD_SECRET = "Zq3vT9pL0xW7mN2rB8kC5yH1dF6gJ4sA-_eUoIiP"  # 40 characters, many distinct


# --- /readyz -----------------------------------------------------------------------------------

def test_readyz_answers_ready_when_the_database_answers_and_sets_no_cookie(client):
    r = client.get("/readyz")
    assert r.status_code == 200
    assert r.json == {"database": "ok", "redis": "not configured", "status": "ready"}
    assert "Set-Cookie" not in r.headers
    assert r.headers["Cache-Control"] == "no-store"


def test_readyz_names_redis_when_redis_is_down_and_leaks_no_detail(app, redis_url):
    down = create_app(TestingConfig, SQLALCHEMY_DATABASE_URI=app.config["SQLALCHEMY_DATABASE_URI"],
                      REDIS_URL="redis://127.0.0.1:1/0")  # nothing listens on port 1
    r = down.test_client().get("/readyz")
    assert r.status_code == 503
    assert r.json == {"database": "ok", "redis": "unreachable", "status": "unavailable"}
    assert b"Error" not in r.data and b"127.0.0.1" not in r.data
    up = create_app(TestingConfig, SQLALCHEMY_DATABASE_URI=app.config["SQLALCHEMY_DATABASE_URI"],
                    REDIS_URL=redis_url)
    assert up.test_client().get("/readyz").json["redis"] == "ok"


def test_readyz_names_the_database_when_it_is_unreachable():
    down = create_app(TestingConfig, SQLALCHEMY_DATABASE_URI="postgresql+psycopg://nobody@127.0.0.1:1/none",
                      SQLALCHEMY_ENGINE_OPTIONS={"connect_args": {"connect_timeout": 1}})
    r = down.test_client().get("/readyz")
    assert r.status_code == 503
    assert r.json == {"database": "unreachable", "redis": "not configured", "status": "unavailable"}
    assert b"nobody" not in r.data


# --- structured logs ---------------------------------------------------------------------------

def _capture(app):
    from portal import RequestIdFilter, log_formatter

    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(RequestIdFilter())
    handler.setFormatter(log_formatter("json"))
    return stream, handler


def test_json_logs_carry_the_request_id_and_never_the_query_string_or_body(app, db):
    from flask import Blueprint

    stream, handler = _capture(app)
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        client = app.test_client()
        r = client.get("/no-such-page?token=s3cr3t-token-value&email=gladys@patient.example",
                       headers={"X-Request-ID": "lb-req-0001"})
        assert r.headers["X-Request-ID"] == "lb-req-0001"
        with app.test_request_context("/signin?reset=s3cr3t-token-value", method="POST",
                                      data={"password": "hunter2-body"}):
            from portal.core.headers import assign_request_id

            assign_request_id()
            logging.getLogger("portal.test").error("something failed")
            try:
                raise ValueError("boom")
            except ValueError:
                logging.getLogger("portal.test").exception("with traceback")
    finally:
        root.removeHandler(handler)
    lines = [json.loads(x) for x in stream.getvalue().splitlines() if x.strip()]
    mine = [x for x in lines if x["logger"] == "portal.test"]
    assert len(mine) == 2
    assert {"ts", "level", "logger", "msg", "request_id"} <= set(mine[0])
    assert mine[0]["level"] == "ERROR" and mine[0]["msg"] == "something failed"
    assert len(mine[0]["request_id"]) == 32 and mine[1]["exc"].startswith("Traceback")
    text = stream.getvalue()
    assert "s3cr3t" not in text and "hunter2" not in text and "gladys" not in text
    del Blueprint


@pytest.mark.parametrize("sent,kept", [
    ("lb-req-0001", True),
    ("a" * 64, True),
    ("short", False),                      # too short to be an id
    ("a" * 65, False),                     # too long
    ("abc def 12345", False),              # spaces
    ("abcdefgh\r\nX-Evil: 1", False),      # header injection attempt
    ("<script>alert(1)</script>", False),
    ("abcdefgh;rm -rf", False),
])
def test_client_request_id_is_kept_only_when_it_is_a_short_safe_token(client, sent, kept):
    try:
        r = client.get("/help", headers={"X-Request-ID": sent})
    except ValueError:  # werkzeug refuses a header with a newline before the app sees it
        assert not kept
        return
    assert (r.headers["X-Request-ID"] == sent) is kept
    if not kept:
        assert len(r.headers["X-Request-ID"]) == 32


# --- production refuses weak settings (issue 5, finding 11) ---------------------------------------

def _prod_env(monkeypatch, **changes):
    env = {"SECRET_KEY": GOOD_SECRET, "DATABASE_URL": "postgresql+psycopg://u@db/portal",
           "FIELD_ENCRYPTION_KEYS": GOOD_FERNET, "REDIS_URL": "redis://127.0.0.1:6379/10",
           "AUDIT_HMAC_KEY": GOOD_SECRET[::-1]}
    env.update(changes)
    for k, v in env.items():
        if v is None:
            monkeypatch.delenv(k, raising=False)
        else:
            monkeypatch.setenv(k, v)


@pytest.mark.parametrize("name,value,says", [
    ("SECRET_KEY", "a" * 40, "not random"),
    ("SECRET_KEY", "dev-only-secret-key-not-for-production ", "development default"),
    ("SECRET_KEY", " " + GOOD_SECRET, "whitespace"),
    ("SECRET_KEY", "Zq3vT9pL0xW7mN2r", "too short"),
    ("FIELD_ENCRYPTION_KEYS", "not-a-fernet-key", "not a Fernet key"),
    ("FIELD_ENCRYPTION_KEYS", "q6K5dX0yq4b2Wl3VJ9lJrJx3f2h1QbQJd2c8Yk9b0m4", "not url-safe base64"),
    ("FIELD_ENCRYPTION_KEYS", GOOD_FERNET + ",%%%%", "key 2"),
    ("FIELD_ENCRYPTION_KEYS", "ZGV2LW9ubHktZmllbGQta2V5LW5vdC1mb3ItcHJvZCE= ", "development default"),
    ("FIELD_ENCRYPTION_KEYS", "YWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWE=", "not random"),
    ("AUDIT_HMAC_KEY", "z" * 40, "not random"),
    ("REDIS_URL", None, "REDIS_URL"),
    ("REDIS_URL", "  ", "REDIS_URL"),
])
def test_production_refuses_weak_or_malformed_settings_with_a_clear_message(monkeypatch, name, value, says):
    _prod_env(monkeypatch, **{name: value})
    with pytest.raises(RuntimeError) as exc:
        create_app(ProductionConfig)
    msg = str(exc.value)
    assert msg.startswith("Refusing to start in production") and name in msg and says in msg
    if value and len(value.strip()) > 8:
        assert value.strip() not in msg  # the message names the setting, never echoes the secret


@pytest.mark.parametrize("keys", [
    {"STRIPE_SECRET_KEY": "sk_live_" + "k" * 24, "STRIPE_PUBLISHABLE_KEY": "pk_live_" + "p" * 24},  # no webhook secret
    {"STRIPE_WEBHOOK_SECRET": "whsec_" + "w" * 24},
    {"STRIPE_SECRET_KEY": "sk_test_localstripe_dev", "STRIPE_PUBLISHABLE_KEY": "pk_test_localstripe_dev",
     "STRIPE_WEBHOOK_SECRET": "whsec_localstripe_dev_only"},
])
def test_production_refuses_a_partial_or_development_stripe_configuration(monkeypatch, keys):
    _prod_env(monkeypatch, **{k: keys.get(k) for k in ("STRIPE_SECRET_KEY", "STRIPE_PUBLISHABLE_KEY",
                                                       "STRIPE_WEBHOOK_SECRET")})
    with pytest.raises(RuntimeError) as exc:
        create_app(ProductionConfig)
    msg = str(exc.value)
    assert msg.startswith("Refusing to start in production") and "STRIPE_WEBHOOK_SECRET" in msg
    assert not any(v in msg for v in keys.values() if "localstripe" not in v)  # never echoes a key


def test_production_takes_all_three_stripe_keys_or_none(monkeypatch):
    _prod_env(monkeypatch, STRIPE_SECRET_KEY=None, STRIPE_PUBLISHABLE_KEY=None, STRIPE_WEBHOOK_SECRET=None)
    app = create_app(ProductionConfig)
    assert app.config["STRIPE_SECRET_KEY"] is None  # online payment shown as unavailable, never the fake
    keys = {"STRIPE_SECRET_KEY": "sk_live_" + "k" * 24, "STRIPE_PUBLISHABLE_KEY": "pk_live_" + "p" * 24,
            "STRIPE_WEBHOOK_SECRET": "whsec_" + "w" * 24}
    _prod_env(monkeypatch, **keys)
    app = create_app(ProductionConfig)
    assert {k: app.config[k] for k in keys} == keys


def test_production_starts_with_strong_settings_and_takes_redis_for_broker_and_limits():
    # In a separate interpreter: a production app rebinds the process-wide Celery settings (eager off).
    env = {k: v for k, v in os.environ.items() if k != "TEST_DATABASE_URL"}
    env.update(PYTHONPATH=str(ROOT), SECRET_KEY=GOOD_SECRET, DATABASE_URL="postgresql+psycopg://u@db/portal",
               FIELD_ENCRYPTION_KEYS=GOOD_FERNET, REDIS_URL="redis://127.0.0.1:6379/10", PORTAL_ENV="production",
               AUDIT_HMAC_KEY=GOOD_SECRET[::-1])
    code = ("from config import ProductionConfig\nfrom portal import create_app\napp = create_app(ProductionConfig)\n"
            "print(app.config['CELERY_BROKER_URL'], app.config['RATELIMIT_STORAGE_URI'], app.config['LOG_FORMAT'])")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split() == ["redis://127.0.0.1:6379/10", "redis://127.0.0.1:6379/10", "json"]


# --- the documented Celery commands ------------------------------------------------------------------

def _env():
    env = dict(os.environ, PORTAL_ENV="development", PYTHONPATH=str(ROOT), MAIL_BACKEND="file")
    env.pop("TEST_DATABASE_URL", None)
    return env


def test_documented_celery_command_loads_the_app_and_its_tasks(tmp_path):
    """`celery -A portal.celery_app …` (README, systemd units) finds the Celery app and every task."""
    env = _env() | {"DATABASE_URL": f"sqlite:///{tmp_path / 'c.sqlite3'}", "MAIL_FILE_DIR": str(tmp_path)}
    # One interpreter (start-up is the slow part): the `celery` console script's own entry point with the
    # documented arguments, then the loaded app's tasks and beat schedule.
    code = ("import sys\nfrom celery.__main__ import main\n"
            "sys.argv = ['celery', '-A', 'portal.celery_app', 'report']\n"
            "try:\n    main()\nexcept SystemExit as exc:\n    assert not exc.code, exc.code\n"
            "from portal.celery_app import app\nimport celery\nassert isinstance(app, celery.Celery)\n"
            "print('TASKS', ' '.join(sorted(t for t in app.tasks if t.startswith('portal.'))))\n"
            "print('BEAT', ' '.join(sorted(app.conf.beat_schedule)))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "software -> celery" in out.stdout  # `celery report` ran against the loaded app
    tasks = out.stdout.split("TASKS", 1)[1].split("BEAT", 1)[0].split()
    assert "portal.send_email" in tasks and "portal.notifications.deliver" in tasks
    assert "portal.scheduling.send_reminders" in tasks
    assert out.stdout.split("BEAT", 1)[1].strip()


def test_static_urls_carry_a_content_hash_for_the_long_nginx_cache(client):
    import hashlib
    import re

    html = client.get("/help").get_data(as_text=True)
    urls = re.findall(r'/static/([^"?]+)\?v=([0-9a-f]{12})"', html)
    assert any(name == "css/portal.css" for name, _ in urls), html[:500]
    for name, v in urls:
        assert v == hashlib.sha256((ROOT / "portal" / "static" / name).read_bytes()).hexdigest()[:12]
    site = (ROOT / "deploy" / "nginx" / "portal.conf").read_text()
    assert "immutable" in site and "expires 1y;" in site
