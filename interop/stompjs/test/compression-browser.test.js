// permessage-deflate (RFC 7692) with the clients that offer it by themselves: @stomp/stompjs in
// headless Chromium, over plain WebSocket and over SockJS's websocket transport, and Node's `ws`
// (which offers it by default). Each side agrees to the extension, and JSON notification bodies
// large enough to be compressed cross both ways intact. That the bytes on the wire are
// compressed is checked in Rust (crates/server/tests/compression.rs); here, that real clients
// inflate what the server deflates and the server inflates what they deflate. The page and the
// scripts are served by Playwright's request routing; nothing leaves this machine.

import assert from 'node:assert/strict';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import { after, before, test } from 'node:test';

import { collect, connect, makeClient, startServer, within } from '../lib/harness.js';
import { PRIVATE_NETWORK_ALLOWED, launchChromium } from '../lib/browser.js';

const require = createRequire(import.meta.url);
const SOCKJS_JS = fs.readFileSync(require.resolve('sockjs-client/dist/sockjs.min.js'));
const STOMP_JS = fs.readFileSync(
  require.resolve('@stomp/stompjs').replace(/esm6\/index\.js$/, 'bundles/stomp.umd.min.js'),
);

// Connects a stompjs client (over WebSocket, or over SockJS forced onto its websocket
// transport), subscribes to `inbox` with a receipt, and keeps what arrives in window.received.
// Resolves with the extensions the browser's WebSocket agreed on.
const PAGE = `<!doctype html>
<html><head><meta charset="utf-8">
<script src="/sockjs.min.js"></script><script src="/stomp.umd.min.js"></script>
</head><body><script>
window.received = [];
window.connectStomp = (options, inbox) => new Promise((resolve, reject) => {
  let sockjs;
  const config = { reconnectDelay: 0, heartbeatIncoming: 0, heartbeatOutgoing: 0 };
  if (options.sockjs) {
    config.webSocketFactory = () => (sockjs = new SockJS(options.sockjs, null, { transports: ['websocket'] }));
  } else {
    config.brokerURL = options.brokerURL;
  }
  const client = new StompJs.Client(config);
  client.onStompError = (frame) => reject(new Error('ERROR ' + frame.headers.message));
  client.onWebSocketClose = (e) => reject(new Error('closed ' + e.code));
  client.onConnect = () => {
    client.subscribe(inbox, (message) => window.received.push(message.body), { receipt: 'sub' });
    client.watchForReceipt('sub', () => {
      window.client = client;
      // sockjs-client's websocket transport keeps the browser's WebSocket as _transport.ws.
      const ws = sockjs ? sockjs._transport.ws : client.webSocket;
      resolve(ws.extensions);
    });
  };
  client.activate();
});
</script></body></html>`;

/** A notification as the documents' backends send them: JSON, some kilobytes, repetitive. */
function notification(i) {
  const ranking = Array.from({ length: 40 }, (_, rank) => ({ rank, user: `climber-${rank}`, points: 1000 - rank }));
  return JSON.stringify({ type: 'ranking-changed', sequence: i, ranking });
}

let server;
let browser;
let httpOrigin;
before(async () => {
  server = await startServer();
  httpOrigin = new URL(server.wsUrl.replace(/^ws:/, 'http:')).origin;
  browser = await launchChromium([PRIVATE_NETWORK_ALLOWED]);
});
after(async () => {
  await browser?.close();
  server?.kill();
});

for (const transport of ['websocket', 'sockjs-websocket']) {
  test(`stompjs in Chromium over ${transport} agrees to permessage-deflate and exchanges JSON`, async (t) => {
    const context = await browser.newContext();
    t.after(() => context.close());
    const assets = { '/page.html': ['text/html', PAGE], '/sockjs.min.js': ['text/javascript', SOCKJS_JS], '/stomp.umd.min.js': ['text/javascript', STOMP_JS] };
    await context.route(
      (url) => url.origin === httpOrigin && url.pathname in assets,
      (route) => {
        const [contentType, body] = assets[new URL(route.request().url()).pathname];
        route.fulfill({ status: 200, contentType, body });
      },
    );
    const page = await context.newPage();
    await page.goto(`${httpOrigin}/page.html`);
    const inbox = `/topic/rankings.${transport}`;
    const options = transport === 'websocket' ? { brokerURL: server.wsUrl } : { sockjs: `${httpOrigin}/sockjs` };
    const extensions = await within(page.evaluate(([o, d]) => window.connectStomp(o, d), [options, inbox]), 'the page to connect');
    assert.match(extensions, /^permessage-deflate\b/, `agreed extensions: ${extensions}`);
    assert.match(extensions, /server_no_context_takeover/);
    assert.match(extensions, /client_no_context_takeover/);

    // A backend on Node's `ws`, which offers permessage-deflate too.
    const backend = makeClient(server.wsUrl);
    t.after(() => backend.deactivate({ force: true }));
    await connect(backend);
    assert.equal(backend.webSocket.extensions, 'permessage-deflate');

    // Server → browser: compressed by the server, inflated by Chromium.
    const sent = [1, 2, 3].map(notification);
    for (const body of sent) backend.publish({ destination: inbox, body });
    await within(page.waitForFunction((n) => window.received.length >= n, sent.length), 'the notifications in the page');
    assert.deepEqual(await page.evaluate(() => window.received), sent);

    // Browser → server: compressed by Chromium, inflated by the server, compressed again to `ws`.
    const replies = `/topic/replies.${transport}`;
    const { messages } = collect(backend, replies, 2);
    const answers = [notification(10), 'short ✓'];
    await page.evaluate(([d, bodies]) => bodies.forEach((body) => window.client.publish({ destination: d, body })), [replies, answers]);
    assert.deepEqual((await messages).map((m) => m.body), answers);
  });
}
