#!/usr/bin/env bash
# The admin API checked against its own OpenAPI document by schemathesis (PyPI, pinned in
# requirements.txt, installed into a virtualenv under the cargo target directory): it generates
# requests for every operation from the schema, valid and not, and checks that no answer is a
# 5xx and that every answer matches its documented schema and content type. Starts its own
# `stompbox` ($STOMPBOX_BIN, else <repo>/target/debug/stompbox; this does not build it) with the
# admin API on a free loopback port. Bounded: a fixed number of examples per operation.
set -euo pipefail
cd "$(dirname "$0")"

ROOT="$(cd ../.. && pwd)"
BIN="${STOMPBOX_BIN:-$ROOT/target/debug/stompbox}"
if ! [ -x "$BIN" ]; then
    echo "no stompbox binary at $BIN (cargo build first, or set STOMPBOX_BIN)" >&2
    exit 1
fi
VENV="${CARGO_TARGET_DIR:-$ROOT/target}/schemathesis-venv"
if ! [ -x "$VENV/bin/schemathesis" ]; then
    echo "installing schemathesis (PyPI) into $VENV"
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install -q --disable-pip-version-check -r requirements.txt
fi

TOKEN="schemathesis-admin-token-$$"
log=$(mktemp)
STOMPBOX_ADMIN__TOKEN="$TOKEN" "$BIN" --ws-listen 127.0.0.1:0 --tcp-listen 127.0.0.1:0 \
    --set store.enabled=false --set admin.enabled=true --set admin.listen=127.0.0.1:0 \
    2>"$log" &
pid=$!
trap 'kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; rm -f "$log"' EXIT
admin=""
for _ in $(seq 1 300); do
    admin=$(grep -o 'admin=[0-9.:]*' "$log" | head -n 1 | cut -d= -f2 || true)
    [ -n "$admin" ] && break
    sleep 0.1
done
if [ -z "$admin" ]; then
    echo "stompbox did not start its admin API:" >&2
    cat "$log" >&2
    exit 1
fi

"$VENV/bin/schemathesis" run "http://$admin/api/openapi.json" \
    --header "Authorization: Bearer $TOKEN" \
    --checks not_a_server_error,response_schema_conformance,content_type_conformance \
    --max-examples 40 --seed 1 --no-color
echo "admin API: schemathesis found nothing against its OpenAPI document"
