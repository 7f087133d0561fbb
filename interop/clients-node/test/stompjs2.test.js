// stompjs 2.3.3 (Jeff Mesnil's original "STOMP over WebSocket", unmaintained since 2014) over
// WebSocket, given a `ws` socket through `Stomp.over(ws)`.
//
// What this client cannot do, so is not tested here:
//  - STOMP 1.2: it always sends `accept-version:1.1,1.0` and offers v10/v11.stomp only, so
//    ACK/NACK go by `message-id` (1.1) rather than the 1.2 `ack` header.
//  - Wait for a DISCONNECT receipt: `disconnect(cb, headers)` sends DISCONNECT, closes the socket
//    and calls `cb` at once. Its `onmessage` handler stays installed though, so a RECEIPT the
//    broker writes before its close frame still reaches `onreceipt`; the test checks that.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';

import Stomp from 'stompjs';
import WebSocket from 'ws';

import {
  BODY, CONNECT_HEADERS, CUSTOM, Inbox, Receipts, checkMessage, checkRedelivery, startServer,
  unique, within,
} from '../lib/harness.js';

let server;
before(async () => {
  server = await startServer();
});
after(() => server?.kill());

/** A connected client; resolves to { client, ws, receipts, frames, connected }. */
async function connect(t) {
  // The subprotocols `Stomp.client(url)` would offer.
  const ws = new WebSocket(server.wsUrl, ['v10.stomp', 'v11.stomp']);
  t.after(() => ws.terminate());
  const client = Stomp.over(ws);
  client.heartbeat = { outgoing: 0, incoming: 0 };
  const frames = [];
  client.debug = (line) => frames.push(line);
  const receipts = new Receipts();
  client.onreceipt = (frame) => receipts.arrived(frame.headers['receipt-id'], frame);
  const connected = await within(
    new Promise((resolve, reject) => client.connect({ ...CONNECT_HEADERS }, resolve, reject)),
    'CONNECTED',
  ).catch((e) => assert.fail(`connect failed: ${e.headers?.message ?? e}\n${frames.join('\n')}`));
  return { client, ws, receipts, frames, connected };
}

test('stompjs 2.x: queue: ack, receipt, nack, redelivery, disconnect', async (t) => {
  const { client, ws, receipts, connected } = await connect(t);
  assert.equal(connected.command, 'CONNECTED');
  assert.equal(connected.headers.version, '1.1');
  assert.equal(ws.protocol, 'v11.stomp');

  const destination = unique('/queue/stompjs2');
  const inbox = new Inbox(`a message on ${destination}`);
  client.subscribe(destination, (message) => inbox.push(message), { ack: 'client-individual' });

  client.send(destination, { ...CUSTOM }, BODY);
  const first = await inbox.next();
  checkMessage(first.headers, first.body, { destination, redelivered: false });
  first.ack();

  client.send(destination, { ...CUSTOM, receipt: 'send-2' }, BODY);
  assert.equal((await receipts.wait('send-2')).command, 'RECEIPT');
  const second = await inbox.next();
  checkMessage(second.headers, second.body, { destination, redelivered: false });
  assert.notEqual(second.headers['message-id'], first.headers['message-id']);
  second.nack();

  const again = await inbox.next('the NACKed message again');
  checkMessage(again.headers, again.body, { destination, redelivered: true });
  checkRedelivery(second.headers, again.headers);
  again.ack();

  // ACKs are fire-and-forget here; a receipted frame after them shows they were processed
  // without an ERROR (ERROR frames would have closed the connection first).
  const closed = new Promise((resolve) => ws.once('close', (code) => resolve(code)));
  client.disconnect(undefined, { receipt: 'bye' });
  assert.equal((await receipts.wait('bye')).command, 'RECEIPT');
  await within(closed, 'the WebSocket to close');
  assert.equal(client.connected, false);
});

test('stompjs 2.x: topic round trip', async (t) => {
  const { client } = await connect(t);
  const destination = unique('/topic/stompjs2');
  const inbox = new Inbox(`a message on ${destination}`);
  // One connection: the broker handles SUBSCRIBE before the SEND that follows it.
  client.subscribe(destination, (message) => inbox.push(message));
  client.send(destination, { ...CUSTOM }, BODY);
  const message = await inbox.next();
  checkMessage(message.headers, message.body, { destination });
  client.disconnect();
});
