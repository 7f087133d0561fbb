// STOMP over SockJS in headless Chromium, for the transports that need a browser: htmlfile and
// jsonp-polling from a page on the server's own origin, iframe-htmlfile and iframe-eventsource
// from a page on another origin (the iframe page loads sockjs-client from `sockjs.client_url`).
// The pages and scripts are served by Playwright's request routing from node_modules: nothing
// leaves this machine. Chromium from lib/browser.js.

import assert from 'node:assert/strict';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import { after, before, test } from 'node:test';

import { startServer, within } from '../lib/harness.js';
import { PRIVATE_NETWORK_ALLOWED, launchChromium } from '../lib/browser.js';

// The cross-origin page is on a made-up public origin (http://page.test) and the server on
// loopback, hence PRIVATE_NETWORK_ALLOWED.

const require = createRequire(import.meta.url);
const SOCKJS_JS = fs.readFileSync(require.resolve('sockjs-client/dist/sockjs.min.js'));
const STOMP_JS = fs.readFileSync(
  require.resolve('@stomp/stompjs').replace(/esm6\/index\.js$/, 'bundles/stomp.umd.min.js'),
);
/** Where the iframe page finds sockjs-client (routed, like the test pages). */
const CLIENT_URL = 'http://assets.test/sockjs.min.js';

// Runs a STOMP session over SockJS forced onto `transport`: subscribe, a SEND with a receipt,
// a second SEND, both delivered, then heart-beats both ways for a few intervals.
const PAGE = `<!doctype html>
<html><head><meta charset="utf-8">
<script src="/sockjs.min.js"></script><script src="/stomp.umd.min.js"></script>
</head><body><script>
window.runStomp = (url, transport) => new Promise((resolve, reject) => {
  const logs = [];
  let socket;
  const client = new StompJs.Client({
    webSocketFactory: () => (socket = new SockJS(url, null, { transports: [transport] })),
    reconnectDelay: 0,
    heartbeatIncoming: 200,
    heartbeatOutgoing: 200,
    debug: (line) => logs.push(line),
  });
  const count = (line) => logs.filter((l) => l === line).length;
  client.onStompError = (frame) => reject(new Error('ERROR ' + frame.headers.message));
  client.onWebSocketClose = (e) => reject(new Error('closed ' + e.code + ': ' + logs.join('\\n')));
  client.onConnect = () => {
    const destination = '/topic/browser.' + transport;
    const bodies = [];
    client.subscribe(destination, (message) => {
      bodies.push(message.body);
      if (bodies.length < 2) return;
      const timer = setInterval(() => {
        if (count('<<< PONG') >= 3 && count('>>> PING') >= 3) {
          clearInterval(timer);
          client.onWebSocketClose = () => {};
          resolve({ transport: socket.transport, bodies, connected: client.connected });
          client.deactivate();
        }
      }, 20);
    });
    client.watchForReceipt('r1', () => client.publish({ destination, body: 'two ✓' }));
    client.publish({ destination, body: 'one', headers: { receipt: 'r1' } });
  };
  client.activate();
});
</script></body></html>`;

let server;
let browser;
let sockjsUrl;
before(async () => {
  server = await startServer({
    env: {
      STOMPBOX_BROKER__HEARTBEAT__MIN: '50ms',
      STOMPBOX_BROKER__HEARTBEAT__SEND: '200ms',
      STOMPBOX_BROKER__HEARTBEAT__RECEIVE: '200ms',
      STOMPBOX_SOCKJS__CLIENT_URL: CLIENT_URL,
    },
  });
  sockjsUrl = server.wsUrl.replace(/^ws:/, 'http:').replace(/\/ws$/, '/sockjs');
  browser = await launchChromium([PRIVATE_NETWORK_ALLOWED]);
});
after(async () => {
  await browser?.close();
  server?.kill();
});

/** A fresh context whose requests for the test page and scripts are answered locally. */
async function openPage(pageUrl) {
  const context = await browser.newContext();
  const script = (body) => ({ status: 200, contentType: 'application/javascript', body });
  await context.route(
    (url) => url.pathname === '/page.html' || url.href === CLIENT_URL || url.pathname.endsWith('.min.js'),
    (route) => {
      const { pathname } = new URL(route.request().url());
      if (pathname === '/page.html') {
        return route.fulfill({ status: 200, contentType: 'text/html', body: PAGE });
      }
      if (pathname === '/stomp.umd.min.js') return route.fulfill(script(STOMP_JS));
      return route.fulfill(script(SOCKJS_JS));
    },
  );
  const page = await context.newPage();
  await page.goto(pageUrl);
  return { context, page };
}

for (const [transport, origin] of [
  ['htmlfile', 'same'],
  ['jsonp-polling', 'same'],
  ['iframe-htmlfile', 'cross'],
  ['iframe-eventsource', 'cross'],
]) {
  test(`SockJS ${transport} in Chromium (${origin}-origin page) carries a STOMP session`, async (t) => {
    const pageUrl = origin === 'same' ? `${new URL(sockjsUrl).origin}/page.html` : 'http://page.test/page.html';
    const { context, page } = await openPage(pageUrl);
    t.after(() => context.close());
    const result = await within(
      page.evaluate(([url, name]) => window.runStomp(url, name), [sockjsUrl, transport]),
      `a STOMP session over ${transport}`,
    );
    assert.equal(result.transport, transport);
    assert.deepEqual(result.bodies, ['one', 'two ✓']);
    assert.equal(result.connected, true);
  });
}
