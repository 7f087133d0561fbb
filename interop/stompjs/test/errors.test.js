// Server ERROR frames surface through stompjs's onStompError: a frame over a limit, shutdown.

import assert from 'node:assert/strict';
import { test } from 'node:test';

import { connect, makeClient, startServer, within } from '../lib/harness.js';

test('a body over max_body_size gets an ERROR and the socket closes', async (t) => {
  const server = await startServer({ env: { STOMPBOX_BROKER__MAX_BODY_SIZE: '4096' } });
  t.after(() => server.kill());
  const client = makeClient(server.wsUrl);
  t.after(() => client.deactivate({ force: true }));
  await connect(client);
  const error = new Promise((resolve) => { client.onStompError = resolve; });
  const closed = new Promise((resolve) => { client.onWebSocketClose = resolve; });
  client.publish({ destination: '/topic/limit', body: 'y'.repeat(8192) });
  const frame = await within(error, 'ERROR for an oversize body');
  assert.equal(frame.command, 'ERROR');
  assert.ok(frame.headers.message, 'the ERROR says why');
  await within(closed, 'the socket to close after ERROR');
});

test('SUBSCRIBE to a destination the broker does not serve gets an ERROR', async (t) => {
  const server = await startServer();
  t.after(() => server.kill());
  const client = makeClient(server.wsUrl);
  t.after(() => client.deactivate({ force: true }));
  await connect(client);
  const error = new Promise((resolve) => { client.onStompError = resolve; });
  client.subscribe('/nowhere/at-all', () => assert.fail('no message expected'));
  const frame = await within(error, 'ERROR for an unserved destination');
  assert.match(frame.headers.message ?? '', /nowhere|destination/i);
});

test('SIGTERM: clients get ERROR "server shutting down", the server exits 0', async (t) => {
  const server = await startServer();
  t.after(() => server.kill());
  const client = makeClient(server.wsUrl);
  t.after(() => client.deactivate({ force: true }));
  await connect(client);
  const error = new Promise((resolve) => { client.onStompError = resolve; });
  const stopping = server.stop();
  const frame = await within(error, 'the shutdown ERROR');
  assert.equal(frame.headers.message, 'server shutting down');
  const { code } = await stopping;
  assert.equal(code, 0);
});
