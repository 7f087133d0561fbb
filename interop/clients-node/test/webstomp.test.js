// webstomp-client (a maintained fork of stompjs 2.x) over WebSocket, given a `ws` socket through
// `webstomp.over(ws)`. It offers v10/v11/v12.stomp and sends `accept-version` for the
// subprotocol the server picked, so this is STOMP 1.2 (ACK/NACK by the MESSAGE's `ack` header).
//
// What this client cannot do: wait for a DISCONNECT receipt. `disconnect(cb, headers)` sends
// DISCONNECT, closes the socket and calls `cb` at once; its `onmessage` handler stays installed,
// so a RECEIPT the broker writes before its close frame still reaches `onreceipt`, as checked.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';

import webstomp from 'webstomp-client';
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
  const ws = new WebSocket(server.wsUrl, webstomp.VERSIONS.supportedProtocols());
  t.after(() => ws.terminate());
  const client = webstomp.over(ws, { heartbeat: false, debug: false });
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

test('webstomp-client: queue: ack, receipt, nack, redelivery, disconnect', async (t) => {
  const { client, ws, receipts, connected } = await connect(t);
  assert.equal(connected.command, 'CONNECTED');
  assert.equal(connected.headers.version, '1.2');
  assert.equal(ws.protocol, 'v12.stomp');

  const destination = unique('/queue/webstomp');
  const inbox = new Inbox(`a message on ${destination}`);
  client.subscribe(destination, (message) => inbox.push(message), { ack: 'client-individual' });

  client.send(destination, BODY, { ...CUSTOM });
  const first = await inbox.next();
  checkMessage(first.headers, first.body, { destination, redelivered: false });
  assert.ok(first.headers.ack, 'a 1.2 MESSAGE in client-individual mode has an ack header');
  first.ack();

  client.send(destination, BODY, { ...CUSTOM, receipt: 'send-2' });
  assert.equal((await receipts.wait('send-2')).command, 'RECEIPT');
  const second = await inbox.next();
  checkMessage(second.headers, second.body, { destination, redelivered: false });
  second.nack();

  const again = await inbox.next('the NACKed message again');
  checkMessage(again.headers, again.body, { destination, redelivered: true });
  checkRedelivery(second.headers, again.headers);
  again.ack();

  // ACK/NACK are fire-and-forget here; a bad one would have drawn an ERROR (and a close, so
  // no RECEIPT) before the DISCONNECT's RECEIPT.
  const closed = new Promise((resolve) => ws.once('close', (code) => resolve(code)));
  client.disconnect(undefined, { receipt: 'bye' });
  assert.equal((await receipts.wait('bye')).command, 'RECEIPT');
  await within(closed, 'the WebSocket to close');
  assert.equal(client.connected, false);
});

test('webstomp-client: topic round trip', async (t) => {
  const { client } = await connect(t);
  const destination = unique('/topic/webstomp');
  const inbox = new Inbox(`a message on ${destination}`);
  // One connection: the broker handles SUBSCRIBE before the SEND that follows it.
  client.subscribe(destination, (message) => inbox.push(message));
  client.send(destination, BODY, { ...CUSTOM });
  const message = await inbox.next();
  checkMessage(message.headers, message.body, { destination });
  client.disconnect();
});
