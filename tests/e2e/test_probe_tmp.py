import pytest
pytestmark = pytest.mark.e2e

def test_probe(page, checks, seed):
    for p in ["/", "/signin", "/activate", "/help", "/password/forgot"]:
        page.goto(p)
        checks.check(page, p)
    print(checks.report())
