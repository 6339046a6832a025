"""Browser journeys: a real server (own database, real commits) in a thread, headless Chromium through
Playwright, axe-core on every page at 1280 px and 375 px, and a sideways-scroll check on phones.

The live server is separate from the rolled-back `app` fixture of tests/conftest.py: the browser's
requests commit for real. Its database is a temporary SQLite file, or, with TEST_DATABASE_URL set, a
PostgreSQL database of its own (<name>_e2e_<worker>), dropped at the end.

Idle timeout here is the production default's order (SESSION_IDLE_SECONDS=600, warning 30 s before), so a
loaded machine never pops the warning dialog over a journey. Journeys that test the dialog install
Playwright's clock (`page.clock`) and fast-forward it, and age the server-side session with
`seed.age_sessions()`: no real-time waiting.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import threading
import time
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path

import pyotp
import pytest

from tests.conftest import PASSWORD, create_pg_database, drop_pg_database, free_port, unavailable, worker_id

try:  # test modules import `expect` from here, so a missing Playwright skips (or fails in CI) cleanly
    from playwright.sync_api import expect
except ImportError:  # pragma: no cover - depends on the machine
    expect = None

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = os.environ.get("PORTAL_E2E_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 375, "height": 740}
IDLE_SECONDS = 600
WARNING_SECONDS = 30
STEP = 30  # TOTP time step


# --- live server ---------------------------------------------------------------------------

@dataclass
class LiveServer:
    url: str
    app: object
    server: object = None
    thread: threading.Thread | None = None

    def path(self, url: str) -> str:
        """The path (and query) of a full URL on this server."""
        return url[len(self.url):] if url.startswith(self.url) else url


def _e2e_database(root: Path) -> tuple[str, callable]:
    base = os.environ.get("TEST_DATABASE_URL")
    if not base:
        return f"sqlite:///{root / 'e2e.sqlite3'}", lambda: None
    from sqlalchemy.engine import make_url

    name = f"{make_url(base).database}_e2e_{worker_id()}"
    try:
        url = create_pg_database(name)
    except Exception as exc:  # pragma: no cover - depends on the machine
        unavailable("PostgreSQL", f"{type(exc).__name__}: {exc}".splitlines()[0])
    return url, lambda: drop_pg_database(name)


@pytest.fixture(scope="session")
def live_server(smtp_server, tmp_path_factory):
    from flask_migrate import upgrade
    from werkzeug.serving import WSGIRequestHandler, make_server

    class QuietHandler(WSGIRequestHandler):
        def log_request(self, *args, **kwargs):  # keep pytest output readable
            pass

    from config import TestingConfig
    from portal import create_app

    root = tmp_path_factory.mktemp("e2e")
    db_url, cleanup = _e2e_database(root)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    app = create_app(
        TestingConfig,
        SQLALCHEMY_DATABASE_URI=db_url,
        MAIL_BACKEND="smtp",
        MAIL_SERVER="127.0.0.1",
        MAIL_PORT=smtp_server.port,
        MAIL_FILE_DIR=str(root / "mail"),
        SESSION_IDLE_SECONDS=IDLE_SECONDS,
        SESSION_WARNING_SECONDS=WARNING_SECONDS,
        PUBLIC_BASE_URL=url,
    )
    with app.app_context():
        upgrade(directory=str(REPO / "migrations"))
    server = make_server("127.0.0.1", port, app, threaded=True, request_handler=QuietHandler)
    thread = threading.Thread(target=server.serve_forever, name="e2e-live-server", daemon=True)
    thread.start()
    live = LiveServer(url=url, app=app, server=server, thread=thread)
    try:
        yield live
    finally:
        server.shutdown()
        thread.join(timeout=5)
        with app.app_context():
            from portal.extensions import db

            db.session.remove()
            db.engine.dispose()
        cleanup()


# --- seeding through the live app ---------------------------------------------------------

@dataclass
class Account:
    email: str
    password: str
    role: str
    totp_secret: str | None = None
    recovery_codes: list[str] = field(default_factory=list)
    patient_public_id: str | None = None
    patient_name: str | None = None
    mrn: str | None = None
    last_step: int | None = None  # the last TOTP step this test used for the account
    display_name: str | None = None

    def totp(self) -> str:
        """A code the server has not seen yet (replay protection: one use per 30-s step)."""
        code, self.last_step = fresh_totp(self.totp_secret, self.last_step)
        return code


def fresh_totp(secret: str, used_step: int | None) -> tuple[str, int]:
    """The current code, waiting (at most one step) until its step is above `used_step`."""
    deadline = time.monotonic() + STEP + 2
    while True:
        step = int(time.time() // STEP)
        if used_step is None or step > used_step:
            return pyotp.TOTP(secret).at(step * STEP), step
        if time.monotonic() > deadline:  # pragma: no cover - clock trouble
            raise AssertionError("TOTP step did not advance")
        time.sleep(0.25)


def oathtool_code(secret: str) -> str | None:
    """Cross-check with an independent TOTP implementation when oathtool is installed."""
    exe = shutil.which("oathtool")
    if not exe:
        return None
    out = subprocess.run([exe, "--totp", "-b", secret], capture_output=True, text=True, timeout=5, check=True)
    return out.stdout.strip()


class Seeder:
    """Writes straight into the live server's database (committed, visible to the browser)."""

    _n = 0

    def __init__(self, live: LiveServer):
        self.live = live
        self.app = live.app

    def _next(self) -> int:
        Seeder._n += 1
        return Seeder._n

    def _patient(self, given: str, family: str, birth: date, email: str | None = None):
        from tests.factories import PatientFactory

        n = self._next()
        return PatientFactory.create(given_name=given, family_name=family, birth_date=birth,
                                     mrn=f"E2E{os.getpid() % 1000:03d}{n:04d}", email=email)

    def staff(self, role: str = "support", *, name: str | None = None) -> Account:
        """A staff account with MFA enrolled and ten recovery codes."""
        from portal.accounts import mfa
        from portal.extensions import db
        from tests.factories import create_user

        with self.app.app_context():
            n = self._next()
            user = create_user(role=role, email=f"e2e-{role}-{n}-{os.getpid()}@clinic.example",
                               display_name=name or f"E2E {role.title()} {n}")
            codes = mfa.new_recovery_codes(user)
            db.session.commit()
            return Account(email=user.email, password=PASSWORD, role=role, totp_secret=user._totp_secret,
                           recovery_codes=codes, display_name=user.display_name)

    def patient_account(self, *, given: str = "Rosa", family: str | None = None, language: str = "en") -> Account:
        """An active patient account (verified email, MFA on, recovery codes) with its own record."""
        from portal.accounts import mfa
        from portal.extensions import db
        from tests.factories import create_user

        with self.app.app_context():
            n = self._next()
            patient = self._patient(given, family or f"Account{n}", date(1971, 3, 14))
            user = create_user(role="patient", patient=patient, email=f"e2e-patient-{n}-{os.getpid()}@patient.example",
                               display_name=given, preferred_language=language)
            codes = mfa.new_recovery_codes(user)
            db.session.commit()
            return Account(email=user.email, password=PASSWORD, role="patient", totp_secret=user._totp_secret,
                           recovery_codes=codes, patient_public_id=patient.public_id,
                           patient_name=f"{patient.given_name} {patient.family_name}", mrn=patient.mrn)

    def patient_record(self, *, given: str, family: str, birth: date) -> dict:
        """A patient record without a portal account."""
        from portal.extensions import db

        with self.app.app_context():
            patient = self._patient(given, family, birth)
            db.session.commit()
            return {"public_id": patient.public_id, "mrn": patient.mrn, "given": given, "family": family,
                    "birth": birth}

    def activation(self, *, given: str, family: str, birth: date) -> dict:
        """A patient record and a fresh activation code issued by a support user (services.issue_activation)."""
        from sqlalchemy import select

        from portal.accounts import services
        from portal.accounts.models import User
        from portal.extensions import db
        from portal.patients.models import Patient

        record = self.patient_record(given=given, family=family, birth=birth)
        issuer = self.staff("support")
        with self.app.test_request_context("/"):
            staff = db.session.execute(select(User).where(User.email == issuer.email)).scalars().one()
            patient = db.session.execute(select(Patient).where(Patient.public_id == record["public_id"])).scalars().one()
            code = services.issue_activation(staff, patient)
            db.session.commit()
        return dict(record, code=code, issued_by=issuer)

    def age_sessions(self, email: str, seconds: int) -> int:
        """Move the live sessions' last activity `seconds` into the past (the server's idle clock)."""
        from sqlalchemy import select

        from portal.accounts.models import User, UserSession
        from portal.extensions import db

        with self.app.app_context():
            uid = db.session.execute(select(User.id).where(User.email == email)).scalar_one()
            rows = db.session.execute(select(UserSession).where(UserSession.user_id == uid,
                                                                UserSession.revoked_at.is_(None))).scalars().all()
            for row in rows:
                row.last_seen_at = row.last_seen_at - timedelta(seconds=seconds)
                row.created_at = min(row.created_at, row.last_seen_at)
            db.session.commit()
            return len(rows)

    def user_field(self, email: str, name: str):
        from sqlalchemy import select

        from portal.accounts.models import User
        from portal.extensions import db

        with self.app.app_context():
            user = db.session.execute(select(User).where(User.email == email)).scalars().one()
            return getattr(user, name)


@pytest.fixture()
def seed(live_server) -> Seeder:
    return Seeder(live_server)


@pytest.fixture()
def fresh_limits(live_server):
    """Per-IP limits are shared by every journey (all from 127.0.0.1): start each test clean."""
    from portal.extensions import limiter

    live_server.app.extensions["portal_throttle"].reset_all()
    with live_server.app.app_context():
        limiter.reset()
    yield


# --- browser -------------------------------------------------------------------------------

@pytest.fixture(scope="session")
def browser():
    if not os.path.exists(CHROMIUM):
        unavailable("Chromium", f"{CHROMIUM} not found")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as exc:  # pragma: no cover
        unavailable("Playwright", str(exc))
    pw = sync_playwright().start()
    try:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
    except Exception as exc:  # pragma: no cover - depends on the machine
        pw.stop()
        unavailable("Chromium", f"{type(exc).__name__}: {exc}".splitlines()[0])
    yield browser
    browser.close()
    pw.stop()


@pytest.fixture()
def context(browser, live_server, fresh_limits, request):
    ctx = browser.new_context(base_url=live_server.url, viewport=DESKTOP, locale="en-US",
                              timezone_id="America/Chicago")
    ctx.set_default_timeout(10_000)
    yield ctx
    failed = getattr(request.node, "rep_call", None)
    if failed is not None and failed.failed:
        out = Path(os.environ.get("PORTAL_E2E_ARTIFACTS", "/tmp/portal-e2e"))
        out.mkdir(parents=True, exist_ok=True)
        for i, pg in enumerate(ctx.pages):
            try:
                pg.screenshot(path=str(out / f"{request.node.name}-{i}.png"), full_page=True)
                (out / f"{request.node.name}-{i}.html").write_text(pg.content())
            except Exception:
                pass
    ctx.close()


@pytest.fixture()
def page(context):
    return context.new_page()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    rep = yield
    if rep.when == "call":
        item.rep_call = rep
    return rep


# --- accessibility and layout checks -----------------------------------------------------

@dataclass
class Finding:
    label: str
    width: int
    rule: str
    impact: str | None
    nodes: int
    targets: list[str]
    help: str = ""

    def __str__(self) -> str:
        where = ", ".join(self.targets[:3]) + (" …" if len(self.targets) > 3 else "")
        return f"[{self.label} @ {self.width}px] {self.rule} ({self.impact}) x{self.nodes}: {self.help} -> {where}"


class PageChecks:
    """axe_check(page, label) on every page a journey visits, at 1280 px and 375 px, plus the 375-px
    sideways-scroll check. Findings are collected; assert_clean() fails once with the whole list."""

    def __init__(self):
        try:
            from axe_playwright_python.sync_playwright import Axe
        except ImportError as exc:  # pragma: no cover
            unavailable("axe-playwright-python", str(exc))

        self.axe = Axe()
        self.violations: list[Finding] = []
        self.scroll: list[str] = []
        self.pages: list[str] = []

    def axe_check(self, page, label: str) -> None:
        width = page.viewport_size["width"]
        results = self.axe.run(page)
        for v in results.response["violations"]:
            targets = [" ".join(map(str, n.get("target", []))) for n in v.get("nodes", [])]
            self.violations.append(Finding(label, width, v["id"], v.get("impact"), len(v.get("nodes", [])),
                                           targets, v.get("help", "")))

    def no_sideways_scroll(self, page, label: str) -> None:
        sw, iw = page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
        if sw > iw:
            wide = page.evaluate(
                """() => { const w = window.innerWidth; return Array.from(document.querySelectorAll('body *'))
                     .filter(e => e.getBoundingClientRect().right > w + 1 && e.getClientRects().length)
                     .slice(0, 3).map(e => e.tagName.toLowerCase() + (e.id ? '#' + e.id : '')
                       + (e.className && typeof e.className === 'string' ? '.' + e.className.split(' ').join('.') : '')); }""")
            self.scroll.append(f"[{label} @ {iw}px] scrollWidth {sw} > innerWidth {iw}: {', '.join(wide)}")

    def check(self, page, label: str) -> None:
        """Axe at desktop width, then axe + no sideways scroll at 375 px; back to desktop."""
        page.wait_for_load_state("load")
        self.pages.append(label)
        original = page.viewport_size
        page.set_viewport_size(DESKTOP)
        self.axe_check(page, label)
        page.set_viewport_size(PHONE)
        page.evaluate("() => new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))")
        self.axe_check(page, label)
        self.no_sideways_scroll(page, label)
        page.set_viewport_size(original or DESKTOP)

    def report(self) -> str:
        lines = [str(f) for f in self.violations] + self.scroll
        return "\n".join(lines)

    def assert_clean(self) -> None:
        assert self.pages, "no page was checked"
        problems = self.report()
        assert not problems, (f"{len(self.violations)} axe violation(s), {len(self.scroll)} sideways-scroll "
                              f"problem(s) on {len(self.pages)} page(s):\n{problems}")


@pytest.fixture()
def checks() -> PageChecks:
    return PageChecks()


# --- small page helpers ------------------------------------------------------------------

def path_of(page) -> str:
    m = re.match(r"https?://[^/]+(/[^?#]*)", page.url)
    return m.group(1) if m else page.url


def sign_in_password(page, email: str, password: str) -> None:
    page.goto("/signin")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Continue").click()
    page.wait_for_load_state("load")


def sign_out(page) -> None:
    page.locator("#signout-form button[type=submit]").click()
    page.wait_for_url(re.compile(r"/signin"))


def flash_texts(page) -> list[str]:
    return [t.strip() for t in page.locator(".flashes .alert").all_inner_texts()]


def expect_flash(page, text: str) -> None:
    """A flash holding `text` shows. A retrying assertion: a click that submits a form returns before
    the redirected page has loaded, so reading the flashes at once can read the page being left."""
    expect(page.locator(".flashes .alert").filter(has_text=text).first).to_be_visible()


__all__ = ["expect", "Account", "LiveServer", "PageChecks", "Seeder", "fresh_totp", "oathtool_code", "path_of",
           "sign_in_password", "sign_out", "flash_texts", "expect_flash", "Checks", "DESKTOP", "PHONE", "IDLE_SECONDS", "WARNING_SECONDS"]


class Checks:
    """checks.check, then dismiss the idle-timeout warning if the (slow, loaded) axe run let it open:
    these journeys stay on a page only as long as the checks take."""

    def __init__(self, checks):
        self.inner = checks

    def check(self, page, label):
        self.inner.check(page, label)
        dialog = page.locator("#session-timeout-dialog[open]")
        if dialog.count():
            page.locator("#session-stay").click()

    def assert_clean(self):
        self.inner.assert_clean()
