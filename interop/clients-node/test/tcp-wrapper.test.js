// @stomp/tcp-wrapper: @stomp/stompjs 7 speaking raw STOMP over a TCP socket (no WebSocket), to
// the broker's TCP listener. The wrapper hands stompjs each `data` chunk as it comes off the
// socket, so this also exercises stompjs's parser on TCP segmentation, and on the "\n" the
// broker writes after each frame's NUL. `deactivate()` sends DISCONNECT with a receipt and
// waits for it (stompjs hands the RECEIPT to `onDisconnect`). Everything asked for is supported.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';

import { Client } from '@stomp/stompjs';
import { TCPWrapper } from '@stomp/tcp-wrapper';

import {
  BODY, CONNECT_HEADERS, CUSTOM, Inbox, checkMessage, checkRedelivery, startServer, unique,
  within,
} from '../lib/harness.js';

let server;
before(async () => {
  server = await startServer();
});
after(() => server?.kill());

/** An activated, connected Client; resolves to { client, logs, disconnected, connected }. */
async function connect(t) {
  const logs = [];
  let disconnectedWith;
  const disconnected = new Promise((resolve) => { disconnectedWith = resolve; });
  let connectedWith;
  let failed;
  const connecting = new Promise((resolve, reject) => {
    connectedWith = resolve;
    failed = reject;
  });
  const client = new Client({
    webSocketFactory: () => new TCPWrapper(server.tcpHost, server.tcpPort),
    connectHeaders: { ...CONNECT_HEADERS },
    disconnectHeaders: { receipt: 'bye' },
    heartbeatIncoming: 0,
    heartbeatOutgoing: 0,
    reconnectDelay: 0,
    debug: (line) => logs.push(line),
    onConnect: (frame) => connectedWith(frame),
    onStompError: (frame) => failed(new Error(`ERROR: ${frame.headers.message}`)),
    onWebSocketClose: () => failed(new Error('socket closed before CONNECTED')),
    onDisconnect: (frame) => disconnectedWith(frame),
  });
  t.after(() => client.deactivate({ force: true }));
  client.activate();
  const connected = await within(connecting, 'CONNECTED').catch((e) =>
    assert.fail(`${e.message}\n${logs.join('\n')}`),
  );
  return { client, logs, disconnected, connected };
}

test('tcp-wrapper + stompjs: queue: ack, receipt, nack, redelivery, disconnect', async (t) => {
  const { client, disconnected, connected } = await connect(t);
  assert.equal(connected.headers.version, '1.2');
  assert.ok(client.webSocket instanceof TCPWrapper, 'the transport is TCP');

  const destination = unique('/queue/tcp-wrapper');
  const inbox = new Inbox(`a message on ${destination}`);
  client.subscribe(destination, (message) => inbox.push(message), { ack: 'client-individual' });

  client.publish({ destination, body: BODY, headers: { ...CUSTOM } });
  const first = await inbox.next();
  checkMessage(first.headers, first.body, { destination, redelivered: false });
  assert.ok(first.headers.ack, 'a 1.2 MESSAGE in client-individual mode has an ack header');
  first.ack();

  const receipt = within(
    new Promise((resolve) => client.watchForReceipt('send-2', resolve)),
    'RECEIPT send-2',
  );
  client.publish({ destination, body: BODY, headers: { ...CUSTOM, receipt: 'send-2' } });
  assert.equal((await receipt).command, 'RECEIPT');
  const second = await inbox.next();
  checkMessage(second.headers, second.body, { destination, redelivered: false });
  second.nack();

  const again = await inbox.next('the NACKed message again');
  checkMessage(again.headers, again.body, { destination, redelivered: true });
  checkRedelivery(second.headers, again.headers);
  again.ack();

  await within(client.deactivate(), 'deactivate()');
  const bye = await within(disconnected, 'the DISCONNECT receipt');
  assert.equal(bye.command, 'RECEIPT');
  assert.equal(bye.headers['receipt-id'], 'bye');
  assert.equal(client.connected, false);
});

test('tcp-wrapper + stompjs: topic round trip', async (t) => {
  const { client } = await connect(t);
  const destination = unique('/topic/tcp-wrapper');
  const inbox = new Inbox(`a message on ${destination}`);
  // One connection: the broker handles SUBSCRIBE before the SEND that follows it.
  client.subscribe(destination, (message) => inbox.push(message));
  client.publish({ destination, body: BODY, headers: { ...CUSTOM } });
  const message = await inbox.next();
  checkMessage(message.headers, message.body, { destination });
  await within(client.deactivate(), 'deactivate()');
});
