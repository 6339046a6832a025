"""gunicorn settings for the portal (`gunicorn -c gunicorn.conf.py wsgi:app`).

Sync workers (PERFORMANCE.md G10), two per core plus one unless WEB_CONCURRENCY says otherwise; timeouts
below the proxy's; no server version banner (SECURITY.md 24); an access log without query strings
(a search or a signed link can carry PHI or a token) that carries the request id.
"""

import multiprocessing
import os

import gunicorn

gunicorn.SERVER = "portal"  # replaces "gunicorn/<version>" in the Server header

bind = os.environ.get("GUNICORN_BIND", "127.0.0.1:8000")
workers = int(os.environ.get("WEB_CONCURRENCY", multiprocessing.cpu_count() * 2 + 1))
worker_class = "sync"
timeout = int(os.environ.get("GUNICORN_TIMEOUT", 30))  # a stuck worker is replaced after 30 s
graceful_timeout = 20
keepalive = 5
max_requests = 5000  # recycle workers now and then (bounded memory, G9)
max_requests_jitter = 500
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1")
accesslog = os.environ.get("GUNICORN_ACCESS_LOG", "-")
# %(U)s is the path without its query string; the request id links a line to the app's logs.
access_log_format = '%(h)s "%(m)s %(U)s %(H)s" %(s)s %(B)s %(M)sms rid=%({x-request-id}o)s'
