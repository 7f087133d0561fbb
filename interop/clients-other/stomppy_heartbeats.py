#!/usr/bin/env python3
"""Interop: stomp.py (PyPI `stomp-py`) with heartbeats=(1000, 1000) against the `stompbox` binary.

Run by run.sh (from scripts/test, after `cargo build`): the binary is $STOMPBOX_BIN, else
<repo>/target/debug/stompbox. It starts stompbox with its default configuration on
127.0.0.1:0, connects over TCP, and checks that the session stays up for 5 s with heart-beats
both ways: the server sends one about every second (stomp.py's `on_heartbeat`), and it keeps
the session open, which it would not do (after 2 s) had it not counted the client's beats.
Every wait is bounded; exits non-zero on failure.
"""

import time

import stomp

from common import start_server, stop_server

UP_S = 5


class Listener(stomp.ConnectionListener):
    def __init__(self):
        self.beats = []
        self.connected = None
        self.events = []

    def on_connected(self, frame):
        self.connected = frame

    def on_heartbeat(self):
        self.beats.append(time.monotonic())

    def on_heartbeat_timeout(self):
        self.events.append("heartbeat timeout")

    def on_error(self, frame):
        self.events.append(f"ERROR {frame.headers.get('message')}")

    def on_disconnected(self):
        self.events.append("disconnected")


def main():
    proc, address = start_server()
    try:
        conn = stomp.Connection([address], heartbeats=(1000, 1000), reconnect_attempts_max=1)
        listener = Listener()
        conn.set_listener("", listener)
        conn.connect(wait=True)
        beat = listener.connected.headers.get("heart-beat")
        assert beat == "1000,1000", f"CONNECTED heart-beat {beat!r}"
        time.sleep(UP_S)
        assert not listener.events, f"the session did not stay up: {listener.events}"
        assert conn.is_connected(), "stomp.py lost the connection"
        # The server's beats: about one a second (the first one second after CONNECTED).
        assert len(listener.beats) >= UP_S - 1, f"{len(listener.beats)} beats in {UP_S} s"
        gaps = [b - a for a, b in zip(listener.beats, listener.beats[1:])]
        assert max(gaps) < 1.6, f"beat gaps {gaps}"
        conn.disconnect()
        print(f"stomp.py heartbeats=(1000, 1000): up {UP_S} s, {len(listener.beats)} server "
              f"beats, largest gap {max(gaps):.2f} s")
    finally:
        stop_server(proc)


if __name__ == "__main__":
    main()
