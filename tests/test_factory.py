import os

import pytest

from config import ProductionConfig, TestingConfig, config_for_env
from portal import create_app


def test_config_selected_by_portal_env(monkeypatch):
    monkeypatch.setenv("PORTAL_ENV", "testing")
    assert config_for_env() is TestingConfig
    monkeypatch.setenv("PORTAL_ENV", "nonsense")
    with pytest.raises(RuntimeError, match="Unknown PORTAL_ENV"):
        config_for_env()


@pytest.mark.parametrize("missing", ["SECRET_KEY", "DATABASE_URL", "FIELD_ENCRYPTION_KEYS", "REDIS_URL",
                                     "AUDIT_HMAC_KEY"])
def test_production_refuses_to_start_and_names_what_is_missing(monkeypatch, missing):
    env = {
        "SECRET_KEY": "Zq3vT9pL0xW7mN2rB8kC5yH1dF6gJ4sA-_eUoIiP",
        "DATABASE_URL": "postgresql+psycopg://u@db/portal",
        "FIELD_ENCRYPTION_KEYS": "q6K5dX0yq4b2Wl3VJ9lJrJx3f2h1QbQJd2c8Yk9b0m4=",
        "REDIS_URL": "redis://127.0.0.1:6379/0",
        "AUDIT_HMAC_KEY": "a-real-audit-key-" + "z" * 32,
    }
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    monkeypatch.delenv(missing)
    with pytest.raises(RuntimeError) as exc:
        create_app(ProductionConfig)
    assert missing in str(exc.value)


def test_production_refuses_sqlite_and_default_secret(monkeypatch):
    monkeypatch.setenv("SECRET_KEY", "dev-only-secret-key-not-for-production")
    monkeypatch.setenv("DATABASE_URL", "sqlite:///x.db")
    monkeypatch.setenv("FIELD_ENCRYPTION_KEYS", "q6K5dX0yq4b2Wl3VJ9lJrJx3f2h1QbQJd2c8Yk9b0m4=")
    with pytest.raises(RuntimeError) as exc:
        create_app(ProductionConfig)
    assert "SECRET_KEY" in str(exc.value) and "DATABASE_URL" in str(exc.value)


def test_production_starts_with_everything_set(monkeypatch):
    monkeypatch.setenv("SECRET_KEY", "Zq3vT9pL0xW7mN2rB8kC5yH1dF6gJ4sA-_eUoIiP")
    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:6379/0")
    monkeypatch.setenv("DATABASE_URL", "postgresql+psycopg://u@db/portal")
    monkeypatch.setenv("FIELD_ENCRYPTION_KEYS", "q6K5dX0yq4b2Wl3VJ9lJrJx3f2h1QbQJd2c8Yk9b0m4=")
    monkeypatch.setenv("AUDIT_HMAC_KEY", "a-real-audit-key-" + "z" * 32)
    app = create_app(ProductionConfig)
    assert app.config["SESSION_COOKIE_NAME"].startswith("__Host-")
    assert app.config["SESSION_COOKIE_SECURE"] is True
    assert app.config["PREFERRED_URL_SCHEME"] == "https"
    assert app.config["HSTS"] is True


def test_healthz(client):
    r = client.get("/healthz")
    assert r.status_code == 200 and r.data == b"ok"
    assert "portal_session" not in r.headers.get("Set-Cookie", "")


def test_testing_app_uses_test_database(app):
    url = app.config["SQLALCHEMY_DATABASE_URI"]
    if os.environ.get("TEST_DATABASE_URL"):
        assert url.startswith("postgresql")
    else:
        assert url.startswith("sqlite")
