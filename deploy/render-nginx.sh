#!/usr/bin/env bash
# Fill deploy/nginx/portal.conf's placeholders:
#   deploy/render-nginx.sh SERVER_NAME CERT KEY APP_ROOT "127.0.0.1:8000 10.0.0.12:8000" ["127.0.0.1:8001 …"] > portal.conf
# (the last list: the PDF pools, portal-pdf.service on each node; default 127.0.0.1:8001)
set -euo pipefail
server_name=$1 cert=$2 key=$3 root=$4 nodes=${5:-127.0.0.1:8000} pdf_nodes=${6:-127.0.0.1:8001}
upstreams=""
for n in $nodes; do upstreams+="server $n max_fails=3 fail_timeout=10s; "; done
pdf_upstreams=""
for n in $pdf_nodes; do pdf_upstreams+="server $n max_fails=3 fail_timeout=10s; "; done
sed -e "s|@SERVER_NAME@|$server_name|g" -e "s|@TLS_CERT@|$cert|g" -e "s|@TLS_KEY@|$key|g" \
    -e "s|@APP_ROOT@|$root|g" -e "s|@UPSTREAMS@|$upstreams|g" -e "s|@PDF_UPSTREAMS@|$pdf_upstreams|g" "$(dirname "$0")/nginx/portal.conf"
