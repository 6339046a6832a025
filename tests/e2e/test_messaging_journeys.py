"""Messaging journeys in Chromium: a patient writes with a photo attached (and hostile markup in the
text); support claims it, adds an internal note and answers with a canned reply that closes it; the
patient reads the reply (never the note) and rates it; the team dashboard shows the rating. A
Spanish-speaking patient writes and reads on a 375-px phone. axe-core at 1280 and 375 px on every
page; a dialog/console trap proves the stored payloads never run."""

from __future__ import annotations

import re

import pytest
from PIL import Image

from tests.e2e.conftest import PHONE, Checks, expect, sign_in_password, sign_out
from tests.e2e.conftest import expect_flash

pytestmark = pytest.mark.e2e

HOSTILE = ("<script>alert('x1')</script>\n\n<img src=x onerror=alert('x2')>\n\n"
           "<a href=\"javascript:alert('x3')\">click</a>\n\n<svg onload=alert('x4')>")


def _sign_in(page, account, home="/home"):
    sign_in_password(page, account.email, account.password)
    expect(page).to_have_url(re.compile(r"/signin/verify$"))
    page.get_by_label(re.compile("6-digit code|Código de 6 dígitos")).fill(account.totp())
    page.get_by_role("button", name=re.compile("Verify|Verificar")).click()
    expect(page).to_have_url(re.compile(home + "$"))


def _trap(page, fired):
    page.on("dialog", lambda d: (fired.append(d.message), d.dismiss()))
    page.on("console", lambda m: fired.append(m.text) if m.type == "error" and "x" in m.text and "alert" in m.text
            else None)


def _pools(seed, support_email):
    from sqlalchemy import select

    from portal.accounts.models import User
    from portal.extensions import db
    from tests.messaging.helpers import add_canned, make_pool

    with seed.app.app_context():
        from portal.messaging.models import CannedReply, Pool

        staff = db.session.execute(select(User).where(User.email == support_email)).scalars().one()
        # another journey may have made the front office pool already (a message with no team of its own
        # lands there): the canned reply this journey uses is added to it either way
        pool = db.session.execute(select(Pool).where(Pool.key == "support")).scalars().first()
        if pool is None:
            pool = make_pool("support", name="Front office", topics="technical,records,appointment,other", hours=8)
        if db.session.execute(select(CannedReply.id).where(CannedReply.pool_id == pool.id,
                                                           CannedReply.title == "Greeting")).first() is None:
            add_canned(pool, "Greeting", "Hello {first_name},\n\nThe form is ready at the front desk.")
        from portal.messaging.models import PoolMember

        db.session.add(PoolMember(pool_id=pool.id, user_id=staff.id))
        db.session.commit()


def test_patient_writes_support_answers_patient_reads_and_rates(page, seed, checks, tmp_path, live_server):
    checks = Checks(checks)
    fired: list[str] = []
    _trap(page, fired)
    support = seed.staff("support", name="Sam Inbox")
    _pools(seed, support.email)
    patient = seed.patient_account(given="Marta")
    photo = tmp_path / "form.png"
    Image.new("RGB", (80, 50), (200, 60, 60)).save(photo, "PNG")

    _sign_in(page, patient)
    page.locator("main a").filter(has_text="Send a message").first.click()
    expect(page.locator("h1")).to_have_text("Send a message")
    checks.check(page, "compose")
    page.get_by_label("A records request").check()
    page.get_by_label("Subject").fill("Work form <b>please</b>")
    page.get_by_label("Your message").fill("I need a signed form for work.\n\n" + HOSTILE)
    page.get_by_label("Attach files").set_input_files(str(photo))
    page.get_by_role("button", name="Send message").click()
    expect_flash(page, "Your message was sent.")
    expect(page.locator(".msg-files")).to_contain_text("form.png")
    checks.check(page, "patient thread")
    sign_out(page)

    _sign_in(page, support, home="/staff")
    checks.check(page, "staff home with inbox card")
    page.goto("/inbox")
    expect(page.locator("main")).to_contain_text("Work form <b>please</b>")
    checks.check(page, "inbox list")
    page.locator("main a").filter(has_text="Work form").first.click()
    checks.check(page, "staff thread")
    page.get_by_role("button", name="Claim").click()
    expect(page.locator("main")).to_contain_text("You own this conversation.")
    page.get_by_label("Reply or note").fill("Internal: signed by Dr. Patel, at the desk")
    page.get_by_label(re.compile("Internal note")).check()
    page.get_by_role("button", name="Send", exact=True).click()
    expect_flash(page, "Internal note added.")
    page.locator("main a").filter(has_text="Greeting").click()
    expect(page.get_by_label("Reply or note")).to_have_value(re.compile(r"^Hello Marta,"))
    page.get_by_label("After sending").select_option("closed")
    page.get_by_role("button", name="Send", exact=True).click()
    expect_flash(page, "Reply sent.")
    checks.check(page, "staff thread answered")
    sign_out(page)

    _sign_in(page, patient)
    expect(page.locator(".nav-badge").first).to_contain_text("1")
    checks.check(page, "patient home with unread reply")
    page.goto("/messages")
    checks.check(page, "patient message list")
    page.locator("main a").filter(has_text="Work form").first.click()
    main = page.locator("main")
    expect(main).to_contain_text("The form is ready at the front desk.")
    assert "signed by Dr. Patel" not in page.content()
    page.get_by_label("5 – excellent").check()
    page.get_by_role("button", name="Send rating").click()
    expect_flash(page, "Thank you for your rating.")
    checks.check(page, "patient thread rated")
    expect(page.locator(".nav-badge")).to_have_count(0)
    sign_out(page)

    _sign_in(page, support, home="/staff")
    page.goto("/inbox/dashboard")
    expect(page.locator("#msg-dashboard")).to_contain_text("5.0 of 5 (1)")
    checks.check(page, "team dashboard")
    assert not fired, fired
    checks.assert_clean()


def test_spanish_patient_writes_and_reads_on_a_phone(page, seed, checks):
    checks = Checks(checks)
    page.set_viewport_size(PHONE)
    support = seed.staff("support", name="Sara Recepción")
    _pools(seed, support.email)
    patient = seed.patient_account(given="Yolanda", language="es")
    _sign_in(page, patient)
    page.goto("/messages/new?topic=appointment")
    expect(page.locator("h1")).to_have_text("Enviar un mensaje")
    expect(page.locator("main")).to_contain_text("Si es una emergencia")
    checks.check(page, "redactar (es)")
    page.get_by_label("Asunto").fill("Cambiar mi cita")
    page.get_by_label("Su mensaje").fill("¿Puedo pasar la cita del jueves a la semana que viene?")
    page.get_by_role("button", name="Enviar mensaje").click()
    expect_flash(page, "Su mensaje se envió.")
    checks.check(page, "conversación (es)")
    thread_url = page.url
    from sqlalchemy import select

    from portal.accounts.models import User
    from portal.extensions import db
    from portal.messaging import services
    from portal.messaging.models import Thread

    with seed.app.test_request_context("/"):
        staff = db.session.execute(select(User).where(User.email == support.email)).scalars().one()
        public_id = thread_url.rstrip("/").rsplit("/", 1)[-1]
        assert db.session.execute(select(Thread).where(Thread.public_id == public_id)).scalars().one()
        services.staff_reply(staff, public_id, body="Sí: el martes a las 10:00 está libre. ¿Le va bien?",
                             then="waiting")
        db.session.commit()
    page.goto("/messages")
    expect(page.locator("main")).to_contain_text("1 respuesta nueva")
    checks.check(page, "mensajes (es)")
    page.locator("main a").filter(has_text="Cambiar mi cita").first.click()
    expect(page.locator("main")).to_contain_text("el martes a las 10:00")
    expect(page.locator("main")).to_contain_text("Esperando su respuesta")
    checks.check(page, "respuesta leída (es)")
    checks.assert_clean()
