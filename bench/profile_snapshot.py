"""Save the HTML of signed-in pages to a folder, to compare a page before and after a speed change.

    python bench/profile_snapshot.py OUT_DIR /record/results /home ... --database-url URL [--lang es]
    git stash; python bench/profile_snapshot.py /tmp/before ...; git stash pop
    python bench/profile_snapshot.py /tmp/after ...; diff -r /tmp/before /tmp/after   # same HTML?

Use your own seeded database (bench/seed.py --database-url): it sets the account's language for the run.
Signs in as bench/load.py does (the seeded patient p0@bench.example, or --role); with --lang, the page is
asked for in that language (the account's preferred language is set for the run and restored after).
The per-request ids (CSP nonce, request id, CSRF token) are replaced by fixed text so two runs compare
with `diff -r`.
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH.parent))
sys.path.insert(0, str(BENCH))

import seed as seeder  # noqa: E402
from load import Portal  # noqa: E402

VOLATILE = [  # per-request values, replaced so two runs compare with diff -r
    (re.compile(r'nonce="[^"]+"'), 'nonce="N"'),
    (re.compile(r'name="csrf_token" value="[^"]+"'), 'name="csrf_token" value="T"'),
    (re.compile(r'name="csrf_token" type="hidden" value="[^"]+"'), 'name="csrf_token" type="hidden" value="T"'),
    (re.compile(r'data-request-id="[^"]+"'), 'data-request-id="R"'),
    (re.compile(r'content="[A-Za-z0-9._-]{40,}"'), 'content="T"'),
]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("out")
    ap.add_argument("paths", nargs="+")
    ap.add_argument("--database-url", required=True, help="your seeded database (bench/seed.py)")
    ap.add_argument("--role", default="patient")
    ap.add_argument("--lang", default=None)
    args = ap.parse_args(argv)
    from sqlalchemy import update

    from portal.accounts.models import User
    from portal.extensions import db

    portal = Portal(args.database_url, Path(tempfile.mkdtemp(prefix="portal-snap-")))
    cookie = portal.cookie(args.role)
    email = seeder.patient_email(0) if args.role == "patient" else seeder.staff_email(args.role)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    with portal.app.app_context():
        before = db.session.execute(db.select(User.preferred_language).where(User.email == email)).scalar_one()
        if args.lang:
            db.session.execute(update(User).where(User.email == email).values(preferred_language=args.lang))
            db.session.commit()
    try:
        client = portal.app.test_client(use_cookies=False)
        for path in args.paths:
            r = client.get(path, headers={"Cookie": cookie})
            html = r.get_data(as_text=True)
            for rx, repl in VOLATILE:
                html = rx.sub(repl, html)
            name = re.sub(r"[^A-Za-z0-9]+", "_", path).strip("_") or "root"
            (out / f"{name}{'.' + args.lang if args.lang else ''}.html").write_text(f"HTTP {r.status_code}\n{html}")
            print(f"{path}: {r.status_code}, {len(html):,} chars")
    finally:
        with portal.app.app_context():
            db.session.execute(update(User).where(User.email == email).values(preferred_language=before))
            db.session.commit()
    return 0


if __name__ == "__main__":
    sys.exit(main())
