#!/usr/bin/env python3
"""Interop: aiostomp (PyPI, asyncio, STOMP 1.1 only) round trips against the `stompbox` binary.

aiostomp always sends `accept-version:1.1` (no host header, heart-beat 1000,1000 by default),
ACKs and NACKs with `message-id` + `subscription`, hands only MESSAGE, CONNECTED and ERROR frames
to its handlers (a RECEIPT goes to `_handle_exception`, which logs "Unhandled frame"), and its
close() drops the TCP connection without a DISCONNECT frame. To see what the server sent anyway,
this test uses a subclass of its StompReader that records CONNECTED, unhandled frames (RECEIPT)
and the raw chunks it reads; receipts are requested with plain extra headers.

Checks: CONNECT, a client-individual queue subscription, SEND with a custom header, MESSAGE
(body, header, destination, redelivered:false), ACK, NACK and redelivery (redelivered:true),
two MESSAGEs in one read, a topic round trip, close. Every wait is bounded; exits non-zero on
failure. Run with the pyenv python3 (where run.sh pip-installs aiostomp).
"""

import asyncio
import importlib.metadata
import logging
import sys
import time
from pathlib import Path

import aiostomp
import aiostomp.aiostomp as aiostomp_module

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import WAIT_S, Results, start_server, stop_server, unique  # noqa: E402

# Filled by the recording reader below; the event loop is single-threaded.
SEEN = {"connected": None, "unhandled": None, "chunks": []}


class RecordingReader(aiostomp_module.StompReader):
    """aiostomp's own reader, recording what it does not hand to the application."""

    async def _handle_connect(self, frame):
        await SEEN["connected"].put(frame)
        await super()._handle_connect(frame)

    async def _handle_exception(self, frame):
        await SEEN["unhandled"].put(frame)
        await super()._handle_exception(frame)

    def data_received(self, data):
        SEEN["chunks"].append(data)
        super().data_received(data)


aiostomp_module.StompReader = RecordingReader


async def take(q, what):
    try:
        return await asyncio.wait_for(q.get(), WAIT_S)
    except asyncio.TimeoutError:
        raise AssertionError(f"no {what} within {WAIT_S} s") from None


async def expect_message(messages, body, destination, redelivered):
    frame = await take(messages, f"MESSAGE {body!r}")
    h = frame.headers
    got = frame.body.decode() if frame.body is not None else None
    assert got == body, f"body {got!r}, expected {body!r}"
    assert h.get("destination") == destination, f"destination {h.get('destination')!r}"
    assert h.get("redelivered") == redelivered, f"redelivered {h.get('redelivered')!r} on {h}"
    return frame


async def expect_receipt(receipt):
    frame = await take(SEEN["unhandled"], f"RECEIPT {receipt}")
    assert frame.command == "RECEIPT", f"{frame.command} {frame.headers}, expected RECEIPT"
    assert frame.headers.get("receipt-id") == receipt, f"RECEIPT {frame.headers}"


async def run(results, address):
    SEEN["connected"] = asyncio.Queue()
    SEEN["unhandled"] = asyncio.Queue()
    errors = []
    messages = asyncio.Queue()

    async def on_error(error):
        errors.append(error)

    async def handler(frame, body):
        await messages.put(frame)
        return True

    name = unique("aiostomp")
    q, topic = f"/queue/{name}", f"/topic/{name}"
    client = aiostomp.AioStomp(address[0], address[1], reconnect_max_attempts=1,
                               error_handler=on_error)
    await client.connect(username="guest", password="guest")
    connected = await take(SEEN["connected"], "CONNECTED")
    assert connected.headers.get("version") == "1.1", f"CONNECTED {connected.headers}"
    assert connected.headers.get("heart-beat") == "1000,1000", f"CONNECTED {connected.headers}"
    results.ok("connect")

    client.subscribe(q, ack="client-individual", handler=handler, auto_ack=False,
                     extra_headers={"receipt": "sub-q"})
    await expect_receipt("sub-q")
    results.ok("subscribe")

    client.send(q, "first", headers={"x-interop": "custom value 1"})
    results.ok("send")
    first = await expect_message(messages, "first", q, "false")
    assert first.headers.get("x-interop") == "custom value 1", first.headers
    assert first.headers.get("x-delivery-count") == "0", first.headers
    assert "ack" not in first.headers, f"1.1 MESSAGE with an ack header: {first.headers}"
    results.ok("receive")
    client.ack(first)
    results.ok("ack")

    client.send(q, "second", headers={"x-interop": "custom value 2", "receipt": "send-2"})
    await expect_receipt("send-2")
    results.cannot("receipt", "no API: RECEIPTs are only logged as 'Unhandled frame'; "
                   "the server's were checked through a reader subclass")
    second = await expect_message(messages, "second", q, "false")
    client.nack(second)
    again = await expect_message(messages, "second", q, "true")
    assert again.headers.get("message-id") == second.headers.get("message-id"), again.headers
    assert again.headers.get("x-delivery-count") == "1", again.headers
    assert again.headers.get("x-interop") == "custom value 2", again.headers
    client.ack(again)
    results.ok("nack")

    # Two MESSAGEs in one read: the queue holds both when the subscription starts, so the server
    # writes them in one go; the recorded chunks show whether one read held both (else retry).
    for attempt in range(1, 6):
        pair = f"/queue/{name}-pair-{attempt}"
        client.send(pair, "pair-1", headers={"x-interop": "p1"})
        client.send(pair, "pair-2", headers={"x-interop": "p2", "receipt": f"pair-{attempt}"})
        await expect_receipt(f"pair-{attempt}")
        SEEN["chunks"].clear()
        client.subscribe(pair, ack="client-individual", handler=handler, auto_ack=False)
        p1 = await expect_message(messages, "pair-1", pair, "false")
        p2 = await expect_message(messages, "pair-2", pair, "false")
        assert (p1.headers["x-interop"], p2.headers["x-interop"]) == ("p1", "p2")
        client.ack(p1)
        client.ack(p2)
        if any(c.count(b"MESSAGE\n") >= 2 for c in SEEN["chunks"]):
            break
    else:
        raise AssertionError(f"the two MESSAGEs never arrived in one read: {SEEN['chunks']}")
    results.ok("two-frames-in-one-read")

    client.subscribe(topic, ack="auto", handler=handler, extra_headers={"receipt": "sub-t"})
    await expect_receipt("sub-t")
    client.send(topic, "to the topic", headers={"x-interop": "topic value"})
    t = await expect_message(messages, "to the topic", topic, None)
    assert t.headers.get("x-interop") == "topic value", t.headers
    results.ok("topic")

    # Settle: a last receipt shows every ACK above was taken without an ERROR.
    client.send(topic, "last", headers={"receipt": "last"})
    await expect_receipt("last")
    await take(messages, "MESSAGE 'last'")
    assert messages.empty(), "unexpected MESSAGE"
    assert SEEN["unhandled"].empty(), "unexpected frame"
    assert not errors, f"ERROR frames: {errors}"
    client.close()
    results.cannot("disconnect", "close() drops the TCP connection, sends no DISCONNECT")
    await asyncio.sleep(0)


def main():
    started = time.monotonic()
    logging.getLogger("aiostomp").setLevel(logging.ERROR)
    results = Results(f"aiostomp {importlib.metadata.version('aiostomp')} (STOMP 1.1)")
    proc, address = start_server()
    try:
        asyncio.run(asyncio.wait_for(run(results, address), 4 * WAIT_S))
        print(results.line(started))
    finally:
        stop_server(proc)


if __name__ == "__main__":
    main()
