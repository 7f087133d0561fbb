// Test harness: starts the `stompbox` binary on 127.0.0.1:0 and parses its `listening` line (the
// same approach as ../stompjs/lib/harness.js), plus small helpers shared by the per-client tests.
// Every wait is bounded.

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import path from 'node:path';
import readline from 'node:readline';
import { fileURLToPath } from 'node:url';

/** Upper bound for any single wait (a loaded 2-core CI machine). */
export const WAIT_MS = 15_000;

const here = path.dirname(fileURLToPath(import.meta.url));
const repoRoot = path.resolve(here, '..', '..', '..');

/**
 * The binary under test: $STOMPBOX_BIN, else $CARGO_TARGET_DIR/debug/stompbox (relative paths
 * resolved against the repository root, as cargo does), else <repo>/target/debug/stompbox.
 */
export function stompboxBin() {
  if (process.env.STOMPBOX_BIN) return path.resolve(process.env.STOMPBOX_BIN);
  const target = process.env.CARGO_TARGET_DIR
    ? path.resolve(repoRoot, process.env.CARGO_TARGET_DIR)
    : path.join(repoRoot, 'target');
  return path.join(target, 'debug', 'stompbox');
}

/** The documented startup line: `listening websocket=<url|disabled> tcp=<addr|disabled>`. */
const LISTENING = /listening websocket=(\S+) tcp=(\S+)/;

/** Rejects after `ms` with a message naming `what`; clears its timer either way. */
export function within(promise, what, ms = WAIT_MS) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/**
 * Starts `stompbox --ws-listen 127.0.0.1:0 --tcp-listen 127.0.0.1:0` with every inherited
 * STOMPBOX_* variable removed from its environment. Resolves to
 * { wsUrl, tcpHost, tcpPort, logs, kill() } once the listening line is printed.
 */
export async function startServer() {
  const env = Object.fromEntries(
    Object.entries(process.env).filter(([name]) => !name.startsWith('STOMPBOX_')),
  );
  env.RUST_LOG = 'info';
  const bin = stompboxBin();
  const child = spawn(bin, ['--ws-listen', '127.0.0.1:0', '--tcp-listen', '127.0.0.1:0'], {
    env,
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  const logs = [];
  const kill = () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  };
  const listening = new Promise((resolve, reject) => {
    child.on('error', (e) => reject(new Error(`cannot start ${bin}: ${e.message}`)));
    child.on('exit', (code, signal) => {
      const why = `stompbox exited (${code ?? signal}) before listening`;
      reject(new Error(`${why}:\n${logs.join('\n')}`));
    });
    readline.createInterface({ input: child.stderr }).on('line', (line) => {
      logs.push(line);
      const m = LISTENING.exec(line);
      if (m) resolve({ wsUrl: m[1], tcpAddr: m[2] });
    });
  });
  try {
    const { wsUrl, tcpAddr } = await within(listening, 'the listening line');
    const colon = tcpAddr.lastIndexOf(':');
    return {
      wsUrl,
      tcpHost: tcpAddr.slice(0, colon),
      tcpPort: Number(tcpAddr.slice(colon + 1)),
      logs,
      kill,
    };
  } catch (e) {
    kill();
    throw e;
  }
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
