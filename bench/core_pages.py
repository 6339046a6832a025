"""The core pages bench/load.py measures (the registry is explained in bench/registry.py). Domains add theirs
in bench/<domain>.py with the same `bench_register(reg)`."""


def bench_register(reg) -> None:
    reg.scenario("/healthz", "/healthz", baseline="hello", goal="G4", min_ratio=0.80)
    reg.scenario("/readyz", "/readyz", baseline="hello")
    reg.scenario("sign-in form", "/signin", baseline="jinja", goal="G3", min_ratio=0.70)
    reg.scenario("help", "/help", baseline="jinja", goal="G3", min_ratio=0.70)
    reg.scenario("not found (404)", "/no-such-page", baseline="jinja", goal="G3", min_ratio=0.70,
                 status=404)
    reg.scenario("dashboard (patient)", "/home", role="patient", baseline="orm", goal="G2", min_ratio=0.30)
    reg.scenario("record (patient)", "/record", role="patient", baseline="orm")
    reg.scenario("staff home", "/staff", role="support", baseline="orm")
