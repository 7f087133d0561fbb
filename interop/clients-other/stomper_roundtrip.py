#!/usr/bin/python3
"""Interop: stomper (Debian `python3-stomper`, STOMP 1.1 frame builder/parser) against `stompbox`.

stomper is no client: it builds frames (its helpers and `Frame.pack()`) and parses a stream of
them (`StompBuffer`); the transport is ours, a plain blocking socket. StompBuffer splits frames
on `\\x00\\n` (or content-length + 2 bytes), so it needs the server's EOL after each NUL; it also
takes a bare heart-beat EOL for garbage and drops the buffer up to the next `\\x00\\n`, so this
uses stomper's default heart-beat 0,0. The stream is decoded as latin-1 so that content-length
(in bytes) matches the length StompBuffer measures (in characters).

Checks: CONNECT (stomper.connect, 1.1), a client-individual queue subscription, SEND with a
custom header, MESSAGE (body, header, destination, redelivered:false), ACK, SEND with a receipt,
NACK and redelivery (redelivered:true), two MESSAGEs taken from one recv(), a topic round trip,
DISCONNECT with a receipt (stomper.disconnect, whose frame has no blank line before the NUL).
Every wait is bounded; exits non-zero on failure. Runs on Debian's /usr/bin/python3.
"""

import socket
import subprocess
import sys
import time
from pathlib import Path

import stomper
from stomper.stompbuffer import StompBuffer

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import WAIT_S, Results, start_server, stop_server, unique  # noqa: E402


def debian_version(package):
    out = subprocess.run(["dpkg-query", "-W", "-f=${Version}", package],
                         capture_output=True, text=True, check=False)
    return out.stdout.strip() or "?"


def frame(cmd, headers, body=""):
    f = stomper.Frame()
    f.cmd = cmd
    f.headers = dict(headers)
    f.body = body
    return f.pack()


class Conn:
    """A socket, stomper's StompBuffer, and a record of how many frames each recv() held."""

    def __init__(self, address):
        self.sock = socket.create_connection(address, timeout=WAIT_S)
        self.buffer = StompBuffer()
        self.frames = []
        self.per_read = []
        self.closed = False

    def send(self, text):
        self.sock.sendall(text.encode("utf-8"))

    def read_once(self):
        """One recv(); every complete frame it completes goes to self.frames."""
        data = self.sock.recv(65536)
        if not data:
            self.closed = True
            return 0
        self.buffer.appendData(data.decode("latin-1"))
        count = 0
        while True:
            msg = self.buffer.getOneMessage()
            if msg is None:
                break
            msg["body"] = msg["body"].encode("latin-1").decode("utf-8")
            self.frames.append(msg)
            count += 1
        self.per_read.append(count)
        return count

    def next_frame(self, what):
        deadline = time.monotonic() + WAIT_S
        while not self.frames:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or self.closed:
                raise AssertionError(f"no {what} within {WAIT_S} s (closed: {self.closed})")
            self.sock.settimeout(remaining)
            try:
                self.read_once()
            except socket.timeout:
                raise AssertionError(f"no {what} within {WAIT_S} s") from None
        f = self.frames.pop(0)
        assert f["cmd"] != "ERROR", f"ERROR {f['headers']} {f['body']!r}"
        return f

    def expect(self, cmd, what):
        f = self.next_frame(what)
        assert f["cmd"] == cmd, f"{f['cmd']} {f['headers']}, expected {what}"
        return f

    def expect_receipt(self, receipt):
        f = self.expect("RECEIPT", f"RECEIPT {receipt}")
        assert f["headers"].get("receipt-id") == receipt, f"RECEIPT {f['headers']}"

    def expect_message(self, body, destination, redelivered):
        f = self.expect("MESSAGE", f"MESSAGE {body!r}")
        h = f["headers"]
        assert f["body"] == body, f"body {f['body']!r}, expected {body!r}"
        assert h.get("destination") == destination, f"destination {h.get('destination')!r}"
        assert h.get("redelivered") == redelivered, f"redelivered {h.get('redelivered')!r} on {h}"
        return f


def main():
    started = time.monotonic()
    results = Results(f"stomper {debian_version('python3-stomper')} (STOMP 1.1)")
    proc, address = start_server()
    try:
        name = unique("stomper")
        q, topic = f"/queue/{name}", f"/topic/{name}"
        c = Conn(address)

        c.send(stomper.connect("guest", "guest", "/"))
        connected = c.expect("CONNECTED", "CONNECTED")
        assert connected["headers"].get("version") == "1.1", f"CONNECTED {connected['headers']}"
        results.ok("connect")

        c.send(stomper.subscribe(q, "q", ack="client-individual"))
        c.send(frame("SEND", {"destination": q, "x-interop": "custom value 1"}, "first"))
        results.ok("send")
        first = c.expect_message("first", q, "false")
        h = first["headers"]
        assert h.get("x-interop") == "custom value 1", h
        assert h.get("subscription") == "q" and h.get("x-delivery-count") == "0", h
        results.ok("subscribe")
        results.ok("receive")
        c.send(stomper.ack(h["message-id"], h["subscription"]))
        results.ok("ack")

        c.send(frame("SEND", {"destination": q, "x-interop": "custom value 2",
                              "receipt": "send-2"}, "second"))
        # The MESSAGE and the RECEIPT may come in either order.
        got = [c.next_frame("RECEIPT send-2 and MESSAGE 'second'") for _ in range(2)]
        receipt = [f for f in got if f["cmd"] == "RECEIPT"]
        assert len(receipt) == 1 and receipt[0]["headers"].get("receipt-id") == "send-2", got
        results.ok("receipt")
        c.frames[0:0] = [f for f in got if f["cmd"] != "RECEIPT"]
        second = c.expect_message("second", q, "false")
        c.send(stomper.nack(second["headers"]["message-id"], "q"))
        again = c.expect_message("second", q, "true")
        assert again["headers"].get("message-id") == second["headers"].get("message-id"), again
        assert again["headers"].get("x-delivery-count") == "1", again
        assert again["headers"].get("x-interop") == "custom value 2", again
        c.send(stomper.ack(again["headers"]["message-id"], "q"))
        results.ok("nack")

        # Two MESSAGEs in one recv(): the queue holds both when the subscription starts; wait a
        # moment so that both are in the socket before the one recv().
        pair = f"/queue/{name}-pair"
        c.send(frame("SEND", {"destination": pair, "x-interop": "p1"}, "pair-1"))
        c.send(frame("SEND", {"destination": pair, "x-interop": "p2", "receipt": "pair"}, "pair-2"))
        c.expect_receipt("pair")
        assert not c.frames, c.frames
        c.send(frame("SUBSCRIBE", {"id": "pair", "destination": pair, "ack": "client-individual"}))
        time.sleep(0.5)
        c.sock.settimeout(WAIT_S)
        n = c.read_once()
        assert n == 2, f"one recv() gave {n} frame(s) to StompBuffer, expected 2: {c.frames}"
        p1 = c.expect_message("pair-1", pair, "false")
        p2 = c.expect_message("pair-2", pair, "false")
        assert (p1["headers"]["x-interop"], p2["headers"]["x-interop"]) == ("p1", "p2")
        c.send(stomper.ack(p1["headers"]["message-id"], "pair"))
        c.send(stomper.ack(p2["headers"]["message-id"], "pair"))
        results.ok("two-frames-in-one-read")

        c.send(frame("SUBSCRIBE", {"id": "t", "destination": topic, "receipt": "sub-t"}))
        c.expect_receipt("sub-t")
        c.send(frame("SEND", {"destination": topic, "x-interop": "topic value"}, "to the topic"))
        t = c.expect_message("to the topic", topic, None)
        assert t["headers"].get("x-interop") == "topic value", t
        results.ok("topic")

        c.send(stomper.disconnect("bye"))
        c.expect_receipt("bye")
        c.sock.settimeout(WAIT_S)
        assert c.sock.recv(1) == b"", "the server did not close the connection after DISCONNECT"
        results.ok("disconnect")
        assert not c.frames, c.frames
        c.sock.close()
        print(results.line(started))
    finally:
        stop_server(proc)


if __name__ == "__main__":
    main()
