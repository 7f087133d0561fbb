// Binary bodies, and a 1 MiB frame split by stompjs over many WebSocket messages.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';

import { collect, connect, makeClient, receipt, startServer } from '../lib/harness.js';

let server;
before(async () => {
  server = await startServer();
});
after(() => server?.kill());

test('binaryBody round-trips byte for byte and arrives as a binary WebSocket message', async (t) => {
  const client = makeClient(server.wsUrl);
  t.after(() => client.deactivate({ force: true }));
  await connect(client);
  // With binaryType 'arraybuffer' (set by stompjs), `ws` delivers binary messages as
  // ArrayBuffer and text messages as strings.
  const kinds = [];
  client.webSocket.addEventListener('message', (evt) => {
    kinds.push(evt.data instanceof ArrayBuffer ? 'binary' : 'text');
  });
  const { messages } = collect(client, '/topic/binary', 2);
  const body = new Uint8Array(4096);
  for (let i = 0; i < body.length; i++) body[i] = (i * 7 + 3) % 256;
  body[0] = 0x00;
  body[1] = 0xff;
  client.publish({
    destination: '/topic/binary',
    binaryBody: body,
    headers: { 'content-type': 'application/octet-stream' },
  });
  client.publish({ destination: '/topic/binary', body: 'plain text' });
  const [binary, text] = await messages;
  assert.deepEqual(Buffer.from(binary.binaryBody), Buffer.from(body));
  assert.equal(binary.headers['content-length'], String(body.length));
  assert.equal(text.body, 'plain text');
  // One WebSocket message per MESSAGE frame here (nothing else is in flight).
  assert.deepEqual(kinds.slice(-2), ['binary', 'text']);
});

test('a 1 MiB frame sent with splitLargeFrames arrives whole', async (t) => {
  const chunk = 16 * 1024;
  const client = makeClient(server.wsUrl, { splitLargeFrames: true, maxWebSocketChunkSize: chunk });
  t.after(() => client.deactivate({ force: true }));
  await connect(client);
  const { messages } = collect(client, '/topic/large', 1);
  const body = 'x'.repeat(1024 * 1024 - 13) + 'end-of-body.';
  const done = receipt(client, 'large');
  client.publish({ destination: '/topic/large', body, headers: { receipt: 'large' } });
  await done;
  const [message] = await messages;
  assert.equal(message.body.length, body.length);
  assert.equal(message.body, body);
  const chunks = client.logs.filter((l) => l.startsWith('chunk sent')).length;
  assert.ok(chunks >= (1024 * 1024) / chunk, `stompjs split the frame (${chunks} chunks)`);
});
