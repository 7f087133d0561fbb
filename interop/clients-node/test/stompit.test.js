// stompit over TCP, the broker's raw STOMP listener. stompit offers `accept-version:1.0,1.1,1.2`
// and sends ACK/NACK with `id` (the 1.2 `ack` header) plus `message-id` and `subscription`.
// Bodies are streams (read with `readString`); receipts are per frame (`onReceipt`), and
// `disconnect()` sends DISCONNECT with a receipt and completes when it arrives. Everything asked
// for is supported.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';

import stompit from 'stompit';

import {
  BODY, CONNECT_HEADERS, CUSTOM, Inbox, Receipts, checkMessage, checkRedelivery, startServer,
  unique, within,
} from '../lib/harness.js';

let server;
before(async () => {
  server = await startServer();
});
after(() => server?.kill());

/** A connected stompit Client; its `errors` (ERROR frames, protocol errors) are collected. */
async function connect(t) {
  let client;
  const connected = new Promise((resolve, reject) => {
    client = stompit.connect(
      {
        host: server.tcpHost,
        port: server.tcpPort,
        // `host` here overrides the TCP host as the CONNECT frame's host header.
        connectHeaders: { ...CONNECT_HEADERS, 'heart-beat': '0,0' },
      },
      (error) => (error ? reject(error) : resolve()),
    );
  });
  t.after(() => client.destroy());
  await within(connected, 'CONNECTED');
  // stompit reports ERROR frames and protocol errors as 'error' events (and then closes).
  client.errors = [];
  client.on('error', (e) => client.errors.push(e));
  return client;
}

/** Subscribes; each MESSAGE is pushed to the returned Inbox as { message, headers, body }. */
function subscribe(client, headers) {
  const inbox = new Inbox(`a message on ${headers.destination}`);
  client.subscribe(headers, (error, message) => {
    if (error) return inbox.fail(error);
    message.readString('utf-8', (e, body) =>
      e ? inbox.fail(e) : inbox.push({ message, headers: message.headers, body }),
    );
  });
  return inbox;
}

test('stompit: queue: ack, receipt, nack, redelivery, disconnect', async (t) => {
  const client = await connect(t);
  assert.equal(client.headers.version, '1.2');

  const destination = unique('/queue/stompit');
  const inbox = subscribe(client, { destination, ack: 'client-individual' });
  const receipts = new Receipts();

  client.sendString({ destination, ...CUSTOM }, BODY);
  const first = await inbox.next();
  checkMessage(first.headers, first.body, { destination, redelivered: false });
  assert.ok(first.headers.ack, 'a 1.2 MESSAGE in client-individual mode has an ack header');
  client.ack(first.message);

  // stompit numbers its receipts itself; `onReceipt` fires for this frame's RECEIPT.
  const onReceipt = () => receipts.arrived('send-2');
  client.sendString({ destination, ...CUSTOM }, BODY, { onReceipt });
  await receipts.wait('send-2');
  const second = await inbox.next();
  checkMessage(second.headers, second.body, { destination, redelivered: false });
  client.nack(second.message);

  const again = await inbox.next('the NACKed message again');
  checkMessage(again.headers, again.body, { destination, redelivered: true });
  checkRedelivery(second.headers, again.headers);
  client.ack(again.message);

  // Completes once the DISCONNECT's RECEIPT arrived and the socket ended; stompit reports a
  // missing receipt as an error ('connection ended without disconnect receipt').
  await within(
    new Promise((resolve, reject) => client.disconnect((e) => (e ? reject(e) : resolve()))),
    'disconnect() (RECEIPT and close)',
  );
  assert.deepEqual(client.errors, []);
});

test('stompit: topic round trip', async (t) => {
  const client = await connect(t);
  const destination = unique('/topic/stompit');
  // One connection: the broker handles SUBSCRIBE before the SEND that follows it.
  const inbox = subscribe(client, { destination });
  client.sendString({ destination, ...CUSTOM }, BODY);
  const message = await inbox.next();
  checkMessage(message.headers, message.body, { destination });
  await within(
    new Promise((resolve, reject) => client.disconnect((e) => (e ? reject(e) : resolve()))),
    'disconnect()',
  );
  assert.deepEqual(client.errors, []);
});
