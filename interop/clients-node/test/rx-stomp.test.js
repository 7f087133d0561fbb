// @stomp/rx-stomp (RxJS wrapper around @stomp/stompjs 7) over WebSocket: `ws` sockets from a
// `webSocketFactory` offering v10/v11/v12.stomp. Messages come from `watch()` observables,
// receipts from `asyncReceipt()`; `deactivate()` sends DISCONNECT with a receipt and waits for it
// (stompjs hands the RECEIPT to `onDisconnect`). Everything asked for is supported.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';

import { RxStomp, RxStompState } from '@stomp/rx-stomp';
import { firstValueFrom } from 'rxjs';
import { filter } from 'rxjs/operators';
import WebSocket from 'ws';

import {
  BODY, CONNECT_HEADERS, CUSTOM, Inbox, checkMessage, checkRedelivery, startServer, unique,
  within,
} from '../lib/harness.js';

let server;
before(async () => {
  server = await startServer();
});
after(() => server?.kill());

/** An activated, connected RxStomp; resolves to { rx, logs, disconnected, serverHeaders }. */
async function connect(t) {
  const rx = new RxStomp();
  const logs = [];
  let disconnectedWith;
  const disconnected = new Promise((resolve) => { disconnectedWith = resolve; });
  rx.configure({
    webSocketFactory: () => new WebSocket(server.wsUrl, ['v10.stomp', 'v11.stomp', 'v12.stomp']),
    connectHeaders: { ...CONNECT_HEADERS },
    disconnectHeaders: { receipt: 'bye' },
    heartbeatIncoming: 0,
    heartbeatOutgoing: 0,
    reconnectDelay: 0,
    debug: (line) => logs.push(line),
    onDisconnect: (frame) => disconnectedWith(frame),
  });
  t.after(() => rx.deactivate({ force: true }));
  rx.activate();
  const serverHeaders = await within(firstValueFrom(rx.serverHeaders$), 'CONNECTED').catch((e) =>
    assert.fail(`${e.message}\n${logs.join('\n')}`),
  );
  await within(
    firstValueFrom(rx.connectionState$.pipe(filter((s) => s === RxStompState.OPEN))),
    'state OPEN',
  );
  return { rx, logs, disconnected, serverHeaders };
}

test('rx-stomp: queue: ack, receipt, nack, redelivery, disconnect', async (t) => {
  const { rx, disconnected, serverHeaders } = await connect(t);
  assert.equal(serverHeaders.version, '1.2');
  assert.equal(rx.stompClient.webSocket.protocol, 'v12.stomp');

  const destination = unique('/queue/rx-stomp');
  const inbox = new Inbox(`a message on ${destination}`);
  const watching = rx
    .watch({ destination, subHeaders: { ack: 'client-individual' } })
    .subscribe((message) => inbox.push(message));
  t.after(() => watching.unsubscribe());

  rx.publish({ destination, body: BODY, headers: { ...CUSTOM } });
  const first = await inbox.next();
  checkMessage(first.headers, first.body, { destination, redelivered: false });
  assert.ok(first.headers.ack, 'a 1.2 MESSAGE in client-individual mode has an ack header');
  first.ack();

  const receipt = rx.asyncReceipt('send-2');
  rx.publish({ destination, body: BODY, headers: { ...CUSTOM, receipt: 'send-2' } });
  assert.equal((await within(receipt, 'RECEIPT send-2')).command, 'RECEIPT');
  const second = await inbox.next();
  checkMessage(second.headers, second.body, { destination, redelivered: false });
  second.nack();

  const again = await inbox.next('the NACKed message again');
  checkMessage(again.headers, again.body, { destination, redelivered: true });
  checkRedelivery(second.headers, again.headers);
  again.ack();

  watching.unsubscribe(); // UNSUBSCRIBE while still connected
  await within(rx.deactivate(), 'deactivate()');
  const bye = await within(disconnected, 'the DISCONNECT receipt');
  assert.equal(bye.command, 'RECEIPT');
  assert.equal(bye.headers['receipt-id'], 'bye');
  assert.equal(rx.connected(), false);
});

test('rx-stomp: topic round trip', async (t) => {
  const { rx } = await connect(t);
  const destination = unique('/topic/rx-stomp');
  // watch() subscribes at once (connected); the SEND after it on the same connection follows it.
  const message = firstValueFrom(rx.watch(destination));
  rx.publish({ destination, body: BODY, headers: { ...CUSTOM } });
  const received = await within(message, `a message on ${destination}`);
  checkMessage(received.headers, received.body, { destination });
  await within(rx.deactivate(), 'deactivate()');
});
