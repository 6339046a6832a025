"""gunicorn settings: sync workers (PERFORMANCE.md G10) and no server version banner (SECURITY.md §24)."""

import gunicorn

gunicorn.SERVER = "portal"  # replaces "gunicorn/<version>" in the Server header
bind = "127.0.0.1:8000"
workers = 4
worker_class = "sync"
forwarded_allow_ips = "127.0.0.1"
