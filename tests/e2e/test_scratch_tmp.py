import re
from tests.e2e.conftest import sign_in_password, PHONE
def test_scratch(page, seed, checks):
    acc = seed.patient_account()
    sign_in_password(page, acc.email, acc.password)
    page.get_by_label("6-digit code").fill(acc.totp()); page.get_by_role("button", name="Verify").click()
    page.wait_for_url(re.compile("/home"))
    for p in ["/account", "/account/sessions", "/account/password", "/account/recovery-codes", "/help", "/record"]:
        page.goto(p); checks.check(page, p)
    page.locator("#signout-form button").click()
    for p in ["/password/forgot", "/nope-404"]:
        page.goto(p); checks.check(page, p)
    acc = seed.staff("admin")
    sign_in_password(page, acc.email, acc.password)
    page.get_by_label("6-digit code").fill(acc.totp()); page.get_by_role("button", name="Verify").click()
    page.wait_for_url(re.compile("/staff"))
    for p in ["/admin/staff/new", "/account", "/account/sessions"]:
        page.goto(p); checks.check(page, p)
    page.get_by_role("button", name="Create the account").click() if False else None
    page.goto("/admin/staff/new"); page.get_by_role("button", name="Create the account").click(); checks.check(page, "staff new errors")
    print(checks.report())
