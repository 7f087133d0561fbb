"""Shared by the Python interop scripts here: start the `stompbox` binary and bound waits.

The binary is $STOMPBOX_BIN, else <repo>/target/debug/stompbox. It is started with its default
configuration on 127.0.0.1:0; the TCP address is read from its `listening ...` line on stderr.
$INTEROP_STOMPBOX_ARGS (split on whitespace) is appended to its command line, e.g.
`--set broker.frame_trailing_eol=false` to see which readers need the EOL after each NUL.
Works on any Python 3.7+ (the stomper script runs on Debian's /usr/bin/python3).
"""

import os
import queue
import re
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BIN = os.environ.get("STOMPBOX_BIN") or str(ROOT / "target" / "debug" / "stompbox")
WAIT_S = 15

# Every capability a script reports on, in this order.
CAPABILITIES = ["connect", "subscribe", "send", "receive", "ack", "nack", "receipt",
                "two-frames-in-one-read", "topic", "disconnect"]


def start_server():
    """Starts stompbox; returns (process, (host, port)) of its raw-STOMP TCP listener."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("STOMPBOX_")}
    env["RUST_LOG"] = "info"
    extra = os.environ.get("INTEROP_STOMPBOX_ARGS", "").split()
    args = [BIN, "--ws-listen", "127.0.0.1:0", "--tcp-listen", "127.0.0.1:0", *extra]
    proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True, env=env)
    found = {}
    ready = threading.Event()

    def read():
        for line in proc.stderr:
            match = re.search(r"listening websocket=\S+ tcp=(\S+)", line)
            if match and not ready.is_set():
                found["tcp"] = match.group(1)
                ready.set()

    threading.Thread(target=read, daemon=True).start()
    if not ready.wait(WAIT_S):
        proc.kill()
        proc.wait(timeout=WAIT_S)
        sys.exit(f"stompbox did not print its listening line within {WAIT_S} s")
    host, port = found["tcp"].rsplit(":", 1)
    return proc, (host, int(port))


def stop_server(proc):
    proc.kill()
    proc.wait(timeout=WAIT_S)


def unique(client):
    """A destination suffix no other run shares."""
    return f"interop-{client}-{os.getpid()}-{uuid.uuid4().hex[:8]}"


def take(q, what, timeout=WAIT_S):
    """The next item of a queue.Queue, or AssertionError after `timeout` seconds."""
    try:
        return q.get(timeout=timeout)
    except queue.Empty:
        raise AssertionError(f"no {what} within {timeout} s") from None


class Results:
    """What passed, what the client cannot do (with why), printed as the script's one line."""

    def __init__(self, client):
        self.client = client
        self.passed = []
        self.unsupported = {}

    def ok(self, capability):
        assert capability in CAPABILITIES, capability
        if capability not in self.passed:
            self.passed.append(capability)

    def cannot(self, capability, why):
        assert capability in CAPABILITIES, capability
        self.unsupported[capability] = why

    def line(self, started):
        missing = [c for c in CAPABILITIES if c not in self.passed and c not in self.unsupported]
        assert not missing, f"not exercised: {missing}"
        text = f"{self.client}: pass {' '.join(c for c in CAPABILITIES if c in self.passed)}"
        if self.unsupported:
            text += "; n/a " + "; ".join(f"{c} ({why})" for c, why in self.unsupported.items())
        return text + f" [{time.monotonic() - started:.1f} s]"
