// STOMP over SockJS: sockjs-client 1.6 (npm) as stompjs's webSocketFactory, each transport that
// runs in Node forced in turn, carrying a whole STOMP session: subscribe, send, receipt,
// heart-beats. The browser-only transports (htmlfile, jsonp-polling) are in
// sockjs-browser.test.js.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import SockJS from 'sockjs-client';

import { collect, connect, makeClient, receipt, startServer, within } from '../lib/harness.js';

let server;
let sockjsUrl;
before(async () => {
  server = await startServer({
    env: {
      STOMPBOX_BROKER__HEARTBEAT__MIN: '50ms',
      STOMPBOX_BROKER__HEARTBEAT__SEND: '200ms',
      STOMPBOX_BROKER__HEARTBEAT__RECEIVE: '200ms',
      // Short enough that a test sees several SockJS heartbeat frames.
      STOMPBOX_SOCKJS__HEARTBEAT_INTERVAL: '100ms',
    },
  });
  sockjsUrl = server.wsUrl.replace(/^ws:/, 'http:').replace(/\/ws$/, '/sockjs');
});
after(() => server?.kill());

/** A stompjs client over SockJS forced onto `transport`; `client.sockets` are its SockJS objects. */
function sockjsClient(transport, options = {}) {
  const sockets = [];
  const client = makeClient(undefined, {
    webSocketFactory: () => {
      const socket = new SockJS(sockjsUrl, null, { transports: [transport] });
      sockets.push(socket);
      return socket;
    },
    ...options,
  });
  client.sockets = sockets;
  return client;
}

/** Resolves once `count` lines equal to `line` are in `client.logs`. */
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

for (const transport of ['websocket', 'xhr-streaming', 'xhr-polling', 'eventsource']) {
  describe(`SockJS ${transport}`, () => {
    test('carries a STOMP session: subscribe, send, receipt, heart-beats', async (t) => {
      const client = sockjsClient(transport, { heartbeatIncoming: 200, heartbeatOutgoing: 200 });
      t.after(() => client.deactivate({ force: true }));
      const connected = await connect(client);
      assert.equal(client.sockets[0].transport, transport, 'the forced transport is used');
      const [sx] = connected.headers['heart-beat'].split(',').map(Number);
      assert.ok(sx > 0, `server heart-beats granted: ${connected.headers['heart-beat']}`);

      const destination = `/topic/sockjs.${transport}`;
      const { messages } = collect(client, destination, 3);
      client.publish({ destination, body: 'one', headers: { receipt: 'sub-sync' } });
      // The SUBSCRIBE went before this SEND on the same session, so it is in place.
      await receipt(client, 'sub-sync');
      client.publish({ destination, body: 'two ünïcödé \u2028 line' });
      client.publish({ destination, body: '{"three":3}', headers: { 'content-type': 'application/json' } });
      const bodies = (await messages).map((m) => m.body);
      assert.deepEqual(bodies, ['one', 'two ünïcödé \u2028 line', '{"three":3}']);

      // STOMP heart-beats both ways, several intervals long, with the session intact.
      await Promise.all([seen(client, '<<< PONG', 4), seen(client, '>>> PING', 4)]);
      assert.equal(client.connected, true);
    });

    test('a second client receives what the first sends, and DISCONNECT ends cleanly', async (t) => {
      const a = sockjsClient(transport);
      const b = sockjsClient(transport);
      t.after(() => Promise.all([a.deactivate({ force: true }), b.deactivate({ force: true })]));
      await Promise.all([connect(a), connect(b)]);
      const destination = `/topic/sockjs.pair.${transport}`;
      const { messages } = collect(b, destination, 1);
      b.publish({ destination: '/topic/none', headers: { receipt: 'b-ready' } });
      await receipt(b, 'b-ready');
      a.publish({ destination, body: 'hello b' });
      assert.equal((await messages)[0].body, 'hello b');
      const closed = new Promise((resolve) => { a.onWebSocketClose = resolve; });
      await a.deactivate();
      await within(closed, 'the SockJS close after DISCONNECT');
    });
  });
}

test('SockJS heartbeat frames flow without STOMP heart-beats and stop once they are negotiated', async (t) => {
  const quiet = sockjsClient('xhr-streaming', { heartbeatIncoming: 0, heartbeatOutgoing: 0 });
  const beating = sockjsClient('xhr-streaming', { heartbeatIncoming: 200, heartbeatOutgoing: 0 });
  t.after(() => Promise.all([quiet.deactivate({ force: true }), beating.deactivate({ force: true })]));
  await Promise.all([connect(quiet), connect(beating)]);
  const count = (client) => {
    const counter = { n: 0 };
    client.sockets[0].addEventListener('heartbeat', () => { counter.n += 1; });
    return counter;
  };
  const [quietBeats, beatingBeats] = [count(quiet), count(beating)];
  // Wait for five SockJS heartbeats on the quiet session (100 ms each); the other session, whose
  // CONNECTED granted STOMP heart-beats, must have had none in the same time.
  await within(
    new Promise((resolve) => {
      const timer = setInterval(() => {
        if (quietBeats.n >= 5) {
          clearInterval(timer);
          resolve();
        }
      }, 20);
    }),
    'five SockJS heartbeat frames',
  );
  assert.equal(beatingBeats.n, 0, 'no SockJS h frames once STOMP heart-beats are on');
});

test('/info answers as the protocol says', async () => {
  const res = await fetch(`${sockjsUrl}/info`, { headers: { Origin: 'http://example.test' } });
  assert.equal(res.status, 200);
  assert.equal(res.headers.get('access-control-allow-origin'), 'http://example.test');
  assert.equal(res.headers.get('access-control-allow-credentials'), 'true');
  const info = await res.json();
  assert.equal(info.websocket, true);
  assert.equal(info.cookie_needed, false);
  assert.deepEqual(info.origins, ['*:*']);
  assert.equal(typeof info.entropy, 'number');
});
