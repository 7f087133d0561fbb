#!/usr/bin/env bash
# Interop with STOMP clients other than stomp.js: one script per client, each starting its own
# `stompbox` ($STOMPBOX_BIN, else <repo>/target/debug/stompbox; this does not build it) and
# running the same round trips over raw TCP (see each script's header).
#
#   stomp.py (PyPI, pinned) and aiostomp (PyPI, pinned)   python3 on PATH
#     (also stomp.py with heartbeats=(1000, 1000) against the default heart-beat settings)
#   stomper (Debian python3-stomper)                       /usr/bin/python3
#   Net::Stomp (Debian libnet-stomp-perl)                  perl
#   Ruby stomp gem (Debian ruby-stomp)                     ruby
#   PECL stomp (Debian php-stomp, php-cli)                 php
#
# Installs what is missing (apt-get update only then), quietly; idempotent. Prints one line per
# client and stops at the first failure (exit 1).
set -euo pipefail
cd "$(dirname "$0")"

ROOT="$(cd ../.. && pwd)"
export STOMPBOX_BIN="${STOMPBOX_BIN:-$ROOT/target/debug/stompbox}"
if ! [ -x "$STOMPBOX_BIN" ]; then
    echo "no stompbox binary at $STOMPBOX_BIN (cargo build first, or set STOMPBOX_BIN)" >&2
    exit 1
fi
# The clients' servers keep no message store: they must not share (or create) ./stompbox-data.
export INTEROP_STOMPBOX_ARGS="${INTEROP_STOMPBOX_ARGS:---set store.enabled=false}"

DEBS=(python3-stomper libnet-stomp-perl ruby-stomp php-cli php-stomp)
missing=()
for deb in "${DEBS[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$deb" 2>/dev/null | grep -q 'install ok installed'; then
        missing+=("$deb")
    fi
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "installing Debian packages: ${missing[*]}"
    log=$(mktemp)
    if ! { apt-get update -qq &&
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"; } >"$log" 2>&1; then
        cat "$log" >&2
        rm -f "$log"
        exit 1
    fi
    rm -f "$log"
fi

# pip only when a pinned version is not what is installed.
if ! python3 - requirements.txt <<'PY' 2>/dev/null
import importlib.metadata, sys
for line in open(sys.argv[1]):
    name, version = line.strip().split("==")
    assert importlib.metadata.version(name) == version
PY
then
    python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore \
        -r requirements.txt
fi

TESTS=(
    "python3 stomppy_roundtrip.py"
    "python3 stomppy_heartbeats.py"
    "python3 aiostomp_roundtrip.py"
    "/usr/bin/python3 stomper_roundtrip.py"
    "perl net_stomp_roundtrip.pl"
    "ruby ruby_stomp_roundtrip.rb"
    "php php_stomp_roundtrip.php"
)
passed=0
for test in "${TESTS[@]}"; do
    if out=$($test 2>&1); then
        echo "ok   $out"
        passed=$((passed + 1))
    else
        echo "FAIL $test"
        echo "$out" | sed 's/^/     /'
        echo "interop: $passed passed, 1 failed"
        exit 1
    fi
done
echo "interop: $passed passed, 0 failed"
