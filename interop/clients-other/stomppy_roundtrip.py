#!/usr/bin/env python3
"""Interop: stomp.py (PyPI `stomp-py` 9.0.0, STOMP 1.2) round trips against the `stompbox` binary.

Over raw TCP: CONNECT (guest/guest, host "/"), a client-individual queue subscription, SEND with a
custom header, MESSAGE (body, header, destination, redelivered:false), ACK, SEND with a receipt,
NACK and redelivery (redelivered:true), two MESSAGEs written together (subscribing to a queue that
already holds two), a topic round trip, DISCONNECT with a receipt. Every wait is bounded; exits
non-zero on failure. Run with the pyenv python3 (where run.sh pip-installs stomp-py).
"""

import queue
import sys
import time
from pathlib import Path

import stomp

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import WAIT_S, Results, start_server, stop_server, take, unique  # noqa: E402


class Listener(stomp.ConnectionListener):
    def __init__(self):
        self.connected = queue.Queue()
        self.messages = queue.Queue()
        self.receipts = queue.Queue()
        self.errors = []
        self.disconnected = queue.Queue()

    def on_connected(self, frame):
        self.connected.put(frame)

    def on_message(self, frame):
        self.messages.put(frame)

    def on_receipt(self, frame):
        self.receipts.put(frame.headers["receipt-id"])

    def on_error(self, frame):
        self.errors.append((frame.headers, frame.body))

    def on_disconnected(self):
        self.disconnected.put(True)


def expect_message(listener, body, destination, redelivered):
    frame = take(listener.messages, f"MESSAGE {body!r}")
    h = frame.headers
    assert frame.body == body, f"body {frame.body!r}, expected {body!r}"
    assert h.get("destination") == destination, f"destination {h.get('destination')!r}"
    assert h.get("redelivered") == redelivered, f"redelivered {h.get('redelivered')!r} on {h}"
    return frame


def expect_receipt(listener, receipt):
    got = take(listener.receipts, f"RECEIPT {receipt}")
    assert got == receipt, f"receipt-id {got!r}, expected {receipt!r}"


def main():
    started = time.monotonic()
    results = Results(f"stomp.py {stomp.__version__} (STOMP 1.2)")
    proc, address = start_server()
    try:
        name = unique("stomppy")
        q, topic = f"/queue/{name}", f"/topic/{name}"
        conn = stomp.Connection12([address], vhost="/", reconnect_attempts_max=1, timeout=WAIT_S)
        listener = Listener()
        conn.set_listener("", listener)

        conn.connect("guest", "guest", wait=True, with_connect_command=True)
        connected = take(listener.connected, "CONNECTED")
        assert connected.headers.get("version") == "1.2", f"CONNECTED {connected.headers}"
        results.ok("connect")

        conn.subscribe(q, id="q", ack="client-individual", receipt="sub-q")
        expect_receipt(listener, "sub-q")
        results.ok("subscribe")

        conn.send(q, "first", headers={"x-interop": "custom value 1"})
        results.ok("send")
        first = expect_message(listener, "first", q, "false")
        assert first.headers.get("x-interop") == "custom value 1", f"custom header: {first.headers}"
        assert first.headers.get("subscription") == "q", first.headers
        assert first.headers.get("x-delivery-count") == "0", first.headers
        results.ok("receive")
        conn.ack(first.headers["ack"])
        results.ok("ack")

        conn.send(q, "second", headers={"x-interop": "custom value 2"}, receipt="send-2")
        expect_receipt(listener, "send-2")
        results.ok("receipt")
        second = expect_message(listener, "second", q, "false")
        conn.nack(second.headers["ack"])
        again = expect_message(listener, "second", q, "true")
        assert again.headers.get("message-id") == second.headers.get("message-id"), again.headers
        assert again.headers.get("x-delivery-count") == "1", again.headers
        assert again.headers.get("x-interop") == "custom value 2", again.headers
        conn.ack(again.headers["ack"], receipt="ack-2")
        expect_receipt(listener, "ack-2")
        results.ok("nack")

        # Two MESSAGEs in one read: the queue holds both when the subscription starts, so the
        # server writes them in one go. stomp.py reads in its own thread, so what it read is
        # recorded (by wrapping its transport's receive) to check that one chunk held both frames;
        # should the two writes ever be split, try again with a fresh queue.
        chunks = []
        receive = conn.transport.receive

        def recording_receive():
            data = receive()
            chunks.append(data)
            return data

        conn.transport.receive = recording_receive
        for attempt in range(1, 6):
            pair = f"/queue/{name}-pair-{attempt}"
            conn.send(pair, "pair-1", headers={"x-interop": "p1"})
            conn.send(pair, "pair-2", headers={"x-interop": "p2"}, receipt=f"pair-sent-{attempt}")
            expect_receipt(listener, f"pair-sent-{attempt}")
            chunks.clear()
            conn.subscribe(pair, id=f"pair-{attempt}", ack="client-individual")
            p1 = expect_message(listener, "pair-1", pair, "false")
            p2 = expect_message(listener, "pair-2", pair, "false")
            assert (p1.headers["x-interop"], p2.headers["x-interop"]) == ("p1", "p2")
            conn.ack(p1.headers["ack"])
            conn.ack(p2.headers["ack"], receipt=f"pair-acked-{attempt}")
            expect_receipt(listener, f"pair-acked-{attempt}")
            if any(c.count(b"MESSAGE\n") >= 2 for c in chunks):
                break
        else:
            raise AssertionError(f"the two MESSAGEs never arrived in one read: {chunks}")
        conn.transport.receive = receive
        results.ok("two-frames-in-one-read")

        conn.subscribe(topic, id="t", ack="auto", receipt="sub-t")
        expect_receipt(listener, "sub-t")
        conn.send(topic, "to the topic", headers={"x-interop": "topic value"})
        t = expect_message(listener, "to the topic", topic, None)
        assert t.headers.get("x-interop") == "topic value", t.headers
        assert t.headers.get("subscription") == "t", t.headers
        results.ok("topic")

        assert listener.messages.empty(), f"unexpected MESSAGE {listener.messages.get().headers}"
        assert not listener.errors, f"ERROR frames: {listener.errors}"
        conn.disconnect(receipt="bye")
        expect_receipt(listener, "bye")
        take(listener.disconnected, "disconnect")
        results.ok("disconnect")
        assert not listener.errors, f"ERROR frames: {listener.errors}"
        print(results.line(started))
    finally:
        stop_server(proc)


if __name__ == "__main__":
    main()
