// Identity and permissions with the real stompjs client: a JWT in CONNECT's passcode and in the
// WebSocket URL's query parameter, a user's own /user/queue messages, a refused send to another
// user's, and a forged token refused before CONNECTED.

import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';

import {
  collect, connect, hs256Token, makeClient, receipt, startServer, within,
} from '../lib/harness.js';

const SECRET = 'interop secret, long enough for HS256';

/** A JWT for `sub` with `roles`, as the server below expects it. */
function token(sub, roles, secret = SECRET) {
  return hs256Token(secret, { sub, roles, iss: 'interop', aud: 'stomp' });
}

const CONFIG = `
[auth.jwt]
secret = "${SECRET}"
issuer = "interop"
audience = "stomp"

[[permissions]]
roles = ["notifier"]
allow = ["send"]
destinations = ["/user/#"]

[[permissions]]
roles = ["user"]
allow = ["send", "subscribe"]
destinations = ["/topic/chat.*", "/user/{user}/#"]
`;

let server;
before(async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'stompbox-security-'));
  const config = path.join(dir, 'stompbox.toml');
  writeFileSync(config, CONFIG);
  server = await startServer({ args: ['--config', config] });
});
after(() => server?.kill());

test('a user receives its own /user/queue messages and may not send to another user', async (t) => {
  // The token in CONNECT's passcode, as RabbitMQ's OAuth 2 plugin expects.
  const alice = makeClient(server.wsUrl, { connectHeaders: { login: '', passcode: token('alice', ['user']) } });
  t.after(() => alice.deactivate({ force: true }));
  await connect(alice);
  const { messages } = collect(alice, '/user/queue/notes', 1);
  const subscribed = receipt(alice, 'sub-notes');
  alice.subscribe('/user/queue/notes', () => {}, { receipt: 'sub-notes' });
  await subscribed;

  // The token in the URL: browsers cannot set headers on a WebSocket.
  const notifierUrl = `${server.wsUrl}?access_token=${token('notifier-1', ['notifier'])}`;
  const notifier = makeClient(notifierUrl);
  t.after(() => notifier.deactivate({ force: true }));
  await connect(notifier);
  notifier.publish({ destination: '/user/alice/queue/notes', body: 'match found' });
  const [note] = await messages;
  assert.equal(note.body, 'match found');
  assert.equal(note.headers.destination, '/user/queue/notes');

  const error = new Promise((resolve) => { alice.onStompError = resolve; });
  const closed = new Promise((resolve) => { alice.onWebSocketClose = resolve; });
  alice.publish({ destination: '/user/bob/queue/notes', body: 'spam' });
  const frame = await within(error, 'access refused');
  assert.equal(frame.headers.message, 'access refused: /user/bob/queue/notes');
  assert.match(frame.body, /send to "\/user\/bob\/queue\/notes" is not permitted for user "alice"/);
  await within(closed, 'the socket to close after ERROR');
});

test('a token signed with another key is refused before CONNECTED', async (t) => {
  const forged = token('alice', ['user'], 'not the server secret at all, no');
  const client = makeClient(server.wsUrl, { connectHeaders: { passcode: forged } });
  t.after(() => client.deactivate({ force: true }));
  await assert.rejects(connect(client), /ERROR before CONNECTED: invalid token/);
});
