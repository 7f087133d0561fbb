// Test harness: starts the `stompbox` binary on 127.0.0.1:0, parses its `listening` line, and
// connects @stomp/stompjs clients to it. Every wait is bounded.

import { createHmac } from 'node:crypto';

import { Client, Versions } from '@stomp/stompjs';
import WebSocket from 'ws';

import { WAIT_MS, startServer, stompboxBin, within } from '../../lib/stompbox.js';

// Node 20 has no global WebSocket; stompjs's documented way is to install `ws` as the global,
// so that `brokerURL` + `stompVersions` drive the subprotocols offered.
Object.assign(globalThis, { WebSocket });

export { Versions, WAIT_MS, startServer, stompboxBin, within };

/** An HS256 JWT signed with `secret` carrying `claims`, valid for ten minutes. */
export function hs256Token(secret, claims) {
  const b64url = (data) => Buffer.from(data).toString('base64url');
  const header = b64url(JSON.stringify({ alg: 'HS256', typ: 'JWT' }));
  const exp = Math.floor(Date.now() / 1000) + 600;
  const payload = b64url(JSON.stringify({ exp, ...claims }));
  const signature = createHmac('sha256', secret).update(`${header}.${payload}`).digest('base64url');
  return `${header}.${payload}.${signature}`;
}

/**
 * A stompjs Client for `wsUrl` with reconnection off and debug lines collected in `client.logs`.
 * `options` are stompjs Client options.
 */
export function makeClient(wsUrl, options = {}) {
  const logs = [];
  const client = new Client({
    brokerURL: wsUrl,
    reconnectDelay: 0,
    heartbeatIncoming: 0,
    heartbeatOutgoing: 0,
    debug: (line) => logs.push(line),
    ...options,
  });
  client.logs = logs;
  return client;
}

/** Activates `client` and resolves with the CONNECTED frame; rejects on ERROR or close. */
export function connect(client) {
  const connected = new Promise((resolve, reject) => {
    client.onConnect = (frame) => resolve(frame);
    client.onStompError = (frame) =>
      reject(new Error(`ERROR before CONNECTED: ${frame.headers.message}`));
    client.onWebSocketClose = (evt) =>
      reject(new Error(`socket closed before CONNECTED (code ${evt.code}): ${client.logs.join('\n')}`));
  });
  client.activate();
  return within(connected, 'CONNECTED');
}

/** Resolves with the next `count` messages delivered to `destination` through `client`. */
export function collect(client, destination, count, headers = {}) {
  const messages = [];
  let subscription;
  const done = new Promise((resolve) => {
    subscription = client.subscribe(
      destination,
      (message) => {
        messages.push(message);
        if (messages.length === count) resolve(messages);
      },
      headers,
    );
  });
  return { subscription, messages: within(done, `${count} message(s) on ${destination}`) };
}

/** Resolves when the server's RECEIPT for `receiptId` arrives. */
export function receipt(client, receiptId) {
  return within(
    new Promise((resolve) => client.watchForReceipt(receiptId, resolve)),
    `RECEIPT ${receiptId}`,
  );
}
