"""deploy/: the nginx site passes `nginx -t` (with a throw-away certificate), its request size limit
matches the app's, it keeps query strings out of the access log, and the systemd units start what the
README documents."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import unavailable

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"


def _render(tmp_path: Path) -> Path:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj",
                    "/CN=portal.test", "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    site = subprocess.run([str(DEPLOY / "render-nginx.sh"), "portal.test", str(cert), str(key), str(ROOT),
                           "127.0.0.1:8000 127.0.0.1:8001", "127.0.0.1:8002"], check=True, capture_output=True, text=True).stdout
    (tmp_path / "site.conf").write_text(site)
    main = f"""
pid {tmp_path}/nginx.pid;
error_log {tmp_path}/error.log;
events {{ worker_connections 64; }}
http {{
    access_log {tmp_path}/access.log;
    client_body_temp_path {tmp_path}/body; proxy_temp_path {tmp_path}/proxy;
    fastcgi_temp_path {tmp_path}/fcgi; uwsgi_temp_path {tmp_path}/uwsgi; scgi_temp_path {tmp_path}/scgi;
    include {tmp_path}/site.conf;
}}
"""
    conf = tmp_path / "nginx.conf"
    conf.write_text(main)
    (tmp_path / "site.conf").write_text(site.replace("/var/log/nginx/portal.access.log", str(tmp_path / "p.log")))
    return conf


def test_nginx_site_passes_nginx_t(tmp_path):
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    if not Path(nginx).exists():
        unavailable("nginx", "not installed (apt-get install nginx)")
    if not shutil.which("openssl"):
        unavailable("openssl", "not installed")
    conf = _render(tmp_path)
    out = subprocess.run([nginx, "-t", "-c", str(conf), "-e", str(tmp_path / "error.log")],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "syntax is ok" in out.stderr and "test is successful" in out.stderr


def test_nginx_limits_match_the_app_and_logs_carry_no_query_strings(app):
    site = (DEPLOY / "nginx" / "portal.conf").read_text()
    m = re.search(r"client_max_body_size\s+(\d+)m;", site)
    assert m, "client_max_body_size missing"
    assert int(m.group(1)) * 1024 * 1024 >= app.config["MAX_CONTENT_LENGTH"]
    fmt = re.search(r"log_format portal_noquery (.*?);", site, re.S).group(1)
    assert "$uri" in fmt and "$request_uri" not in fmt and "$args" not in fmt and "$request " not in fmt
    assert "server_tokens off;" in site
    assert "proxy_set_header X-Forwarded-For $remote_addr;" in site  # overwrite, never trust the client's


def test_pdfs_go_to_their_own_pool_and_static_files_never_do(app):
    """Every PDF the app renders on demand is routed to the PDF pool (G5/G9); no static file is."""
    site = (DEPLOY / "nginx" / "portal.conf").read_text()
    pdf = re.search(r"location ~ (\S+) \{\s*proxy_pass http://portal_pdf;", site)
    assert pdf, "no PDF location"
    pattern = re.compile(pdf.group(1))  # nginx's PCRE and Python read this expression alike
    pdf_rules = [r.rule for r in app.url_map.iter_rules() if r.rule.endswith(".pdf")]
    assert len(pdf_rules) >= 3, pdf_rules  # two statement views and the record export
    assert all(pattern.search(rule) for rule in pdf_rules)
    assert "location ^~ /static/" in site  # a prefix match that no regular expression overrides


@pytest.mark.parametrize("unit,command", [
    ("portal-web.service", "gunicorn -c gunicorn.conf.py wsgi:app"),
    ("portal-worker.service", "celery -A portal.celery_app worker"),
    ("portal-beat.service", "celery -A portal.celery_app beat"),
    ("portal-pdf.service", "gunicorn -c gunicorn.conf.py --bind 127.0.0.1:8001 --workers 2 --timeout 120"),
])
def test_systemd_units_run_the_documented_commands(unit, command):
    text = (DEPLOY / "systemd" / unit).read_text()
    assert re.search(r"^ExecStart=\S+/" + re.escape(command.split()[0]) + " " + re.escape(" ".join(command.split()[1:])),
                     text, re.M), text
    assert "Environment=PORTAL_ENV=production" in text and "EnvironmentFile=/etc/portal/portal.env" in text
    assert "NoNewPrivileges=true" in text and "ProtectSystem=strict" in text
