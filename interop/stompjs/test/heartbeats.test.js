// Heart-beats both ways at short intervals, negotiated in CONNECTED.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';

import { connect, makeClient, startServer, within } from '../lib/harness.js';

let server;
before(async () => {
  server = await startServer({
    env: {
      STOMPBOX_BROKER__HEARTBEAT__MIN: '50ms',
      STOMPBOX_BROKER__HEARTBEAT__SEND: '100ms',
      STOMPBOX_BROKER__HEARTBEAT__RECEIVE: '100ms',
    },
  });
});
after(() => server?.kill());

/** Resolves once `client.logs` has `count` lines equal to `line`. */
function seen(client, line, count) {
  return within(
    new Promise((resolve) => {
      const timer = setInterval(() => {
        if (client.logs.filter((l) => l === line).length >= count) {
          clearInterval(timer);
          resolve();
        }
      }, 20);
    }),
    `${count} × ${line}`,
  );
}

test('server and client heart-beat each other and the session stays up', async (t) => {
  const client = makeClient(server.wsUrl, { heartbeatIncoming: 100, heartbeatOutgoing: 100 });
  let closed = false;
  let lost = false;
  t.after(() => client.deactivate({ force: true }));
  const connected = await connect(client);
  client.onWebSocketClose = () => { closed = true; };
  client.onHeartbeatLost = () => { lost = true; };

  const [sx, sy] = connected.headers['heart-beat'].split(',').map(Number);
  assert.ok(sx > 0 && sx <= 100, `server sends beats: ${connected.headers['heart-beat']}`);
  assert.ok(sy > 0 && sy <= 100, `server wants beats: ${connected.headers['heart-beat']}`);

  // Ten beats each way (~1 s) is five times the server's grace window: had the server not
  // counted the client's beats it would have closed the session, and stompjs would have
  // declared the server lost without the server's beats.
  await Promise.all([seen(client, '<<< PONG', 10), seen(client, '>>> PING', 10)]);
  assert.equal(lost, false, 'stompjs never lost the server');
  assert.equal(closed, false, 'the server kept the session open');
  assert.equal(client.connected, true);
});

test('the server closes a client that stops sending heart-beats', async (t) => {
  // The client promises beats every 100 ms but its ticker is stubbed out after CONNECTED.
  const client = makeClient(server.wsUrl, { heartbeatIncoming: 0, heartbeatOutgoing: 100 });
  t.after(() => client.deactivate({ force: true }));
  await connect(client);
  // Swallow heart-beat EOLs on this socket only; frames still go out.
  const socket = client.webSocket;
  const send = socket.send.bind(socket);
  socket.send = (data) => (data === '\n' ? undefined : send(data));
  const closed = new Promise((resolve) => { client.onWebSocketClose = resolve; });
  const error = new Promise((resolve) => { client.onStompError = resolve; });
  await within(closed, 'the server to close a silent client');
  // An ERROR frame may or may not make it out before the close; if it did, it says why.
  const frame = await Promise.race([error, Promise.resolve(null)]);
  if (frame) assert.match(frame.headers.message ?? '', /heart/i);
});

// With the server's default configuration: stompjs's `heartbeatIncoming/Outgoing = 1000` gets
// beats about every second (not the server's old 10 s), and a client that goes silent is closed
// within about 2 s (grace 2 × 1 s), not 20 s.
test('default server: 1 s beats as asked, and a silent client closed within 3 s', async (t) => {
  const plain = await startServer();
  t.after(() => plain.kill());
  const client = makeClient(plain.wsUrl, { heartbeatIncoming: 1000, heartbeatOutgoing: 1000 });
  t.after(() => client.deactivate({ force: true }));
  const connected = await connect(client);
  assert.equal(connected.headers['heart-beat'], '1000,1000');
  // stompjs logs every EOL it receives as a PONG: the beats, and the EOL that ends each frame.
  const pongs = () => client.logs.filter((l) => l === '<<< PONG').length;
  const before = pongs();
  await new Promise((resolve) => setTimeout(resolve, 3500));
  const beats = pongs() - before;
  assert.ok(beats >= 3 && beats <= 4, `${beats} server beats in 3.5 s`);

  const socket = client.webSocket;
  const send = socket.send.bind(socket);
  socket.send = (data) => (data === '\n' ? undefined : send(data));
  const silent = Date.now();
  const closed = new Promise((resolve) => { client.onWebSocketClose = resolve; });
  await within(closed, 'the server to close a silent client');
  const after = Date.now() - silent;
  assert.ok(after < 3000, `closed ${after} ms after the client fell silent`);
});
