// Test harness: the `stompbox` binary on 127.0.0.1:0 (../../lib/stompbox.js, shared with the
// stompjs suite), plus small helpers shared by the per-client tests. Every wait is bounded.

import assert from 'node:assert/strict';

import { WAIT_MS, startServer as startStompbox, within } from '../../lib/stompbox.js';

export { WAIT_MS, within };

/**
 * Starts the binary (see ../../lib/stompbox.js); resolves to { wsUrl, tcpHost, tcpPort, logs,
 * kill() } once it listens.
 */
export async function startServer() {
  const server = await startStompbox();
  const colon = server.tcpAddr.lastIndexOf(':');
  return {
    ...server,
    tcpHost: server.tcpAddr.slice(0, colon),
    tcpPort: Number(server.tcpAddr.slice(colon + 1)),
  };
}

let names = 0;
/** A destination name no other test (or earlier run against the same broker) uses. */
export function unique(prefix) {
  return `${prefix}-${process.pid}-${Date.now().toString(36)}-${++names}`;
}

/** Every test sends this UTF-8 body (2-, 3- and 4-byte sequences) ... */
export const BODY = 'Grüße aus dem Stompbox 日本語 ✓ 🎸';
/** ... and these custom headers (one plain, one with a non-ASCII value). */
export const CUSTOM = { 'x-interop': 'clients-node', 'x-interop-utf8': 'café' };

/** The CONNECT headers the brief asks for. */
export const CONNECT_HEADERS = { login: 'guest', passcode: 'guest', host: '/' };

/**
 * A queue of things delivered by callbacks (messages, receipts), read with bounded waits.
 * `fail(error)` makes the pending and every later `next()` reject.
 */
export class Inbox {
  constructor(what) {
    this.what = what;
    this.items = [];
    this.waiters = [];
    this.error = null;
  }

  push(item) {
    const waiter = this.waiters.shift();
    if (waiter) waiter.resolve(item);
    else this.items.push(item);
  }

  fail(error) {
    this.error = error instanceof Error ? error : new Error(String(error));
    for (const waiter of this.waiters.splice(0)) waiter.reject(this.error);
  }

  /** The next item, waiting at most WAIT_MS for it. */
  next(what = this.what) {
    if (this.items.length) return Promise.resolve(this.items.shift());
    if (this.error) return Promise.reject(this.error);
    let waiter;
    const pending = new Promise((resolve, reject) => {
      waiter = { resolve, reject };
      this.waiters.push(waiter);
    });
    // A timed-out waiter must not swallow a later item.
    return within(pending, what).finally(() => {
      this.waiters = this.waiters.filter((w) => w !== waiter);
    });
  }
}

/**
 * Receipts keyed by `receipt-id`: `arrived(id)` from the client's callback, `wait(id)` in the
 * test (either order).
 */
export class Receipts {
  constructor() {
    this.seen = new Map();
  }

  #entry(id) {
    let entry = this.seen.get(String(id));
    if (!entry) {
      let resolve;
      const promise = new Promise((r) => { resolve = r; });
      entry = { promise, resolve };
      this.seen.set(String(id), entry);
    }
    return entry;
  }

  arrived(id, frame = true) {
    this.#entry(id).resolve(frame);
  }

  wait(id) {
    return within(this.#entry(id).promise, `RECEIPT ${id}`);
  }
}

/**
 * The checks every client makes on a queue or topic MESSAGE: our body and custom headers came
 * through, on `destination`, with `redelivered` as expected (queues only; pass undefined for
 * topics).
 */
export function checkMessage(headers, body, { destination, redelivered }) {
  assert.equal(body, BODY, 'UTF-8 body');
  for (const [name, value] of Object.entries(CUSTOM)) assert.equal(headers[name], value, name);
  assert.equal(headers.destination, destination);
  assert.ok(headers['message-id'], 'message-id');
  assert.ok(headers.subscription, 'subscription');
  if (redelivered !== undefined) assert.equal(headers.redelivered, String(redelivered));
}

/** A NACKed queue message came back with one more `x-delivery-count`. */
export function checkRedelivery(before, again) {
  assert.equal(Number(again['x-delivery-count']), Number(before['x-delivery-count']) + 1);
}
