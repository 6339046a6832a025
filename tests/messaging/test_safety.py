"""Sanitisation (a hostile corpus stored through the real forms renders inert) and attachments (size,
type by content, polyglots, path tricks, empty files: refused with the message text kept)."""

from __future__ import annotations

import io
import re

import pytest
from html.parser import HTMLParser
from sqlalchemy import func, select

from portal.messaging import attachments, sanitize
from portal.messaging.models import Attachment, Message
from tests.helpers import form_token
from tests.messaging.helpers import HEIC, PDF, jpeg_bytes, make_pool, png_bytes

XSS = [
    "<script>alert(1)</script>", "<img src=x onerror=alert(1)>", "<svg onload=alert(1)>",
    "<svg><script>alert(1)</script></svg>", "<a href=\"javascript:alert(1)\">x</a>", "<a href='JaVaScRiPt:alert(1)'>x</a>",
    "<a href=\"java\tscript:alert(1)\">x</a>", "<a href=\"data:text/html,<script>alert(1)</script>\">x</a>",
    "<iframe src=\"javascript:alert(1)\"></iframe>", "<body onload=alert(1)>", "<div style=\"background:url(javascript:alert(1))\">x</div>",
    "<style>*{background:url('javascript:alert(1)')}</style>", "<math><mtext><table><mglyph><style><img src=x onerror=alert(1)>",
    "<<script>alert(1)//<</script>", "<scr<script>ipt>alert(1)</script>", "\"><script>alert(1)</script>",
    "'><img src=x onerror=alert(1)>", "<input autofocus onfocus=alert(1)>", "<details open ontoggle=alert(1)>",
    "<video><source onerror=alert(1)></video>", "<object data=\"javascript:alert(1)\">", "<embed src=\"javascript:alert(1)\">",
    "<form action=\"javascript:alert(1)\"><button>x</button></form>", "<meta http-equiv=\"refresh\" content=\"0;url=javascript:alert(1)\">",
    "<link rel=stylesheet href=\"javascript:alert(1)\">", "<base href=\"javascript:alert(1)//\">", "<a href=\"&#106;avascript:alert(1)\">x</a>",
    "<a href=\"&#x6A;avascript:alert(1)\">x</a>", "<a href=\"vbscript:msgbox(1)\">x</a>", "<p onclick=alert(1)>x</p>",
    "<a href=\"https://ok.example\" onmouseover=alert(1)>x</a>", "<strong onmouseover=alert(1)>x</strong>",
    "<!--<img src=x onerror=alert(1)>-->", "<![CDATA[<script>alert(1)</script>]]>", "<noscript><p title=\"</noscript><img src=x onerror=alert(1)>\">",
    "<template><script>alert(1)</script></template>", "<textarea></textarea><script>alert(1)</script>", "<title><script>alert(1)</script></title>",
    "<a href=\" javascript:alert(1)\">x</a>", "<a href=\"\u0000javascript:alert(1)\">x</a>", "\u202e<script>alert(1)</script>",
    "<img src=\"x\" onerror=\"&#97;lert(1)\">", "<svg><a xlink:href=\"javascript:alert(1)\"><text>x</text></a></svg>",
    "<isindex action=javascript:alert(1) type=image>", "<marquee onstart=alert(1)>", "<audio src=x onerror=alert(1)>",
    "<table background=\"javascript:alert(1)\">", "<a href=\"data:image/svg+xml;base64,PHN2ZyBvbmxvYWQ9YWxlcnQoMSk+\">x</a>",
    "javascript:alert(1)", "https://ok.example/\"onmouseover=\"alert(1)", "<a href=x:alert(1)>x</a>", "<b><i><p>unclosed",
]


class _Tags(HTMLParser):
    """Every start tag and attribute of a fragment, as a browser's tokenizer sees them."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.found = []

    def handle_starttag(self, tag, attrs):
        self.found.append((tag, dict(attrs)))


def unsafe(fragment: str) -> list:
    parser = _Tags()
    parser.feed(fragment)
    bad = []
    for tag, attrs in parser.found:
        if tag not in sanitize.ALLOWED_TAGS:
            bad.append(tag)
        for name, value in attrs.items():
            if name not in ("href", "rel"):
                bad.append((tag, name))
            if name == "href" and not re.match(r"^(https?://|mailto:)", value or ""):
                bad.append((tag, value))
            if name == "rel" and value != sanitize.REL:
                bad.append((tag, value))
    return bad


def test_corpus_has_50_payloads_and_each_is_inert():
    assert len(XSS) >= 50
    for payload in XSS:
        html = sanitize.to_html(payload)
        assert not unsafe(html), (payload, html)
        assert not unsafe(str(sanitize.render(html))), payload
        assert not unsafe(str(sanitize.render(payload))), payload  # a row written past the form


def test_light_formatting_and_safe_links():
    html = sanitize.to_html("Hello\n\n- one\n- two\n\n1. a\n2. b\n\nSee https://example.org/x?a=1&b=2")
    assert "<p>Hello</p><ul><li>one</li><li>two</li></ul><ol><li>a</li><li>b</li></ol>" in html
    assert '<a href="https://example.org/x?a=1&amp;b=2" rel="nofollow noopener noreferrer">' in html
    assert sanitize.render('<a href="https://x.example" target="_blank">x</a>') == \
        '<a href="https://x.example" rel="nofollow noopener noreferrer">x</a>'
    assert sanitize.clean_text("a\u202eb\u200bc\x00d") == "abcd"


def test_stored_through_the_real_forms_renders_inert(app, db, login_as):
    client, patient = login_as("patient")
    staff_client, staff = login_as("support")
    make_pool("support", members=[staff])
    html = client.get("/messages/new").get_data(as_text=True)
    key = re.search(r'name="client_key"[^>]*value="([^"]+)"', html).group(1)
    from portal.core.forms import has_control_characters

    # a payload with a control character (a NUL) is refused by the form itself (core rule, issue 5)
    typed = [p for p in XSS if not has_control_characters(p, multiline=True)]
    assert len(typed) >= len(XSS) - 2
    refused = client.post("/messages/new", data={"csrf_token": form_token(html), "client_key": key, "topic": "other",
                                                 "subject": "x", "body": "\n\n".join(XSS)})
    assert refused.status_code == 400 and "control characters" in refused.get_data(as_text=True)
    r = client.post("/messages/new", data={"csrf_token": form_token(html), "client_key": key, "topic": "other",
                                           "subject": "<script>alert('s')</script>", "body": "\n\n".join(typed)})
    assert r.status_code == 302
    for c, path in ((client, r.location), (staff_client, "/inbox"),
                    (staff_client, r.location.replace("/messages/", "/inbox/"))):
        page = c.get(path).get_data(as_text=True)
        main = page.split("<main", 1)[1].split("</main>", 1)[0]
        bodies = re.findall(r'<div class="msg-body">(.*?)</div>', main, re.S)
        assert bodies or "/inbox" == path, path
        for body in bodies:
            assert not unsafe(body), (path, unsafe(body))
        assert "&lt;script&gt;alert(&#39;s&#39;)&lt;/script&gt;" in main
        assert "<script>alert" not in page


def _post(client, files, body="Please keep this text"):
    html = client.get("/messages/new").get_data(as_text=True)
    key = re.search(r'name="client_key"[^>]*value="([^"]+)"', html).group(1)
    data = {"csrf_token": form_token(html), "client_key": key, "topic": "other", "subject": "Files",
            "body": body, "attachments": [(io.BytesIO(d), n) for d, n in files]}
    return client.post("/messages/new", data=data, content_type="multipart/form-data")


@pytest.mark.parametrize("data,name,why", [
    (b"", "empty.pdf", "is empty"),
    (b"<html><script>alert(1)</script></html>", "report.pdf", "not a PDF, JPEG, PNG or HEIC"),
    (b"PK\x03\x04" + b"\x00" * 100, "archive.png", "not a PDF, JPEG, PNG or HEIC"),
    (b"<svg xmlns='http://www.w3.org/2000/svg' onload='alert(1)'/>", "image.png", "not a PDF"),
    (png_bytes() + b"<script>alert(1)</script>", "polyglot.png", "not a PDF"),
    (b"%PDF-1.4\n<html><script>alert(1)</script>\n%%EOF", "polyglot.pdf", "not a PDF"),
    (b"\xff\xd8\xff\xe0" + b"garbage" * 10, "broken.jpg", "not a PDF"),
    (b"MZ\x90\x00" + b"\x00" * 64, "setup.pdf", "not a PDF"),
])
def test_bad_files_are_refused_and_the_text_is_kept(app, db, login_as, data, name, why):
    make_pool("support")
    client, _ = login_as("patient")
    r = _post(client, [(data, name)])
    page = r.get_data(as_text=True)
    assert r.status_code == 400 and why in page and "Please keep this text" in page
    assert db.session.execute(select(func.count()).select_from(Message)).scalar_one() == 0


def test_oversized_files_are_refused(app, db, login_as):
    make_pool("support")
    client, _ = login_as("patient")
    app.config["MESSAGING_ATTACHMENT_MAX_BYTES"] = 2048
    try:
        import os

        from PIL import Image

        out = io.BytesIO()
        Image.frombytes("RGB", (60, 60), os.urandom(60 * 60 * 3)).save(out, "PNG")
        r = _post(client, [(out.getvalue(), "big.png")])
    finally:
        app.config.pop("MESSAGING_ATTACHMENT_MAX_BYTES")
    assert r.status_code == 400 and "too large" in r.get_data(as_text=True)


def test_good_files_get_clean_names_and_random_storage(app, db, login_as):
    make_pool("support")
    client, _ = login_as("patient")
    r = _post(client, [(PDF, "../../etc/passwd.pdf"), (jpeg_bytes(), "C:\\x\\photo\u202egpj.exe"),
                       (HEIC, "IMG_0001.HEIC")])
    assert r.status_code == 302, r.get_data(as_text=True)[:2000]
    rows = db.session.execute(select(Attachment).order_by(Attachment.id)).scalars().all()
    assert [(a.content_type, a.filename) for a in rows] == [
        ("application/pdf", "passwd.pdf"), ("image/jpeg", rows[1].filename), ("image/heic", "IMG_0001.heic")]
    assert rows[1].filename.endswith("photogpj.jpg") and not re.search(r"[\\/:\u202e]", rows[1].filename)
    for a in rows:
        assert re.fullmatch(r"[0-9a-f]{40}\.(pdf|jpg|heic)", a.stored_name)
        r = client.get(f"/messages/attachments/{a.public_id}")
        assert r.headers["X-Content-Type-Options"] == "nosniff" and r.mimetype == a.content_type
        assert "attachment" in r.headers["Content-Disposition"]


def test_too_many_files(app, db, login_as):
    make_pool("support")
    client, _ = login_as("patient")
    r = _post(client, [(PDF, f"{n}.pdf") for n in range(attachments.MAX_FILES + 1)])
    assert r.status_code == 400 and "at most 3 files" in r.get_data(as_text=True)


def test_two_large_files_fit_though_the_app_wide_body_limit_is_10_mb(app, db, login_as):
    make_pool("support")
    client, _ = login_as("patient")
    big = b"%PDF-1.4\n" + b"0" * (6 * 1024 * 1024) + b"\n%%EOF\n"
    r = _post(client, [(big, "a.pdf"), (big, "b.pdf")])
    assert r.status_code == 302
    assert db.session.execute(select(func.count()).select_from(Attachment)).scalar_one() == 2
    over = b"%PDF-1.4\n" + b"0" * (10 * 1024 * 1024) + b"\n%%EOF\n"
    r = _post(client, [(over, "c.pdf")])
    assert r.status_code == 400 and "too large" in r.get_data(as_text=True)
