// Server-Sent Events in headless Chromium: a page's EventSource receives what a backend POSTs to
// /publish, loses its connection (closed from the server's side, by a TCP proxy in front of the
// server that this test cuts), reconnects by itself with Last-Event-ID and resumes with nothing
// missed and nothing twice. The page is served by Playwright's request routing; nothing leaves
// this machine. Chromium from lib/browser.js.

import assert from 'node:assert/strict';
import net from 'node:net';
import { after, before, test } from 'node:test';


import { startServer, within } from '../lib/harness.js';
import { launchChromium } from '../lib/browser.js';


const PAGE = `<!doctype html>
<html><head><meta charset="utf-8"></head><body><script>
window.received = [];
window.opens = 0;
window.errors = 0;
window.lastIds = [];
window.listen = (path) => new Promise((resolve) => {
  const events = new EventSource(path);
  events.onopen = () => { window.opens += 1; resolve(); };
  events.onerror = () => { window.errors += 1; };
  events.onmessage = (e) => {
    window.received.push(e.data);
    window.lastIds.push(e.lastEventId);
  };
});
</script></body></html>`;

/** A TCP proxy on 127.0.0.1:0 to `target`; `cut()` closes every connection through it. */
async function startProxy(target) {
  const sockets = new Set();
  const proxy = net.createServer((client) => {
    const upstream = net.connect(target.port, target.hostname);
    for (const socket of [client, upstream]) {
      sockets.add(socket);
      socket.on('close', () => sockets.delete(socket));
      socket.on('error', () => {});
    }
    client.pipe(upstream);
    upstream.pipe(client);
    client.on('close', () => upstream.destroy());
    upstream.on('close', () => client.destroy());
  });
  await new Promise((resolve) => proxy.listen(0, '127.0.0.1', resolve));
  return {
    origin: `http://127.0.0.1:${proxy.address().port}`,
    cut: () => sockets.forEach((socket) => socket.destroy()),
    close: () => {
      sockets.forEach((socket) => socket.destroy());
      proxy.close();
    },
  };
}

let server;
let browser;
let proxy;
let httpOrigin;
before(async () => {
  server = await startServer({ env: { STOMPBOX_SSE__RETRY: '200ms' } });
  httpOrigin = new URL(server.wsUrl.replace(/^ws:/, 'http:')).origin;
  proxy = await startProxy(new URL(httpOrigin));
  browser = await launchChromium();
});
after(async () => {
  await browser?.close();
  proxy?.close();
  server?.kill();
});

/** POSTs `body` to `destination` through /publish (JSON form), expecting 202. */
async function publish(destination, body) {
  const response = await fetch(`${httpOrigin}/publish`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ destination, body }),
  });
  assert.equal(response.status, 202, await response.text());
}

/** Waits until the page has received `count` events. */
async function received(page, count) {
  await within(page.waitForFunction((n) => window.received.length >= n, count), `${count} events in the page`);
  return page.evaluate(() => window.received.slice());
}

test('EventSource in Chromium resumes after a dropped connection with nothing missed', async (t) => {
  const context = await browser.newContext();
  t.after(() => context.close());
  await context.route(
    (url) => url.pathname === '/page.html',
    (route) => route.fulfill({ status: 200, contentType: 'text/html', body: PAGE }),
  );
  const page = await context.newPage();
  await page.goto(`${proxy.origin}/page.html`);
  const destination = '/topic/notifications.user42';
  await within(
    page.evaluate((path) => window.listen(path), `/sse?destination=${encodeURIComponent(destination)}`),
    'the stream to open',
  );

  const expected = [];
  for (let i = 1; i <= 5; i++) {
    expected.push(`before ${i}: ${'✓'.repeat(i)}\nsecond line`);
    await publish(destination, expected.at(-1));
  }
  assert.deepEqual(await received(page, 5), expected);

  // The connection drops from the server's side; what is published before the page is back
  // waits in its stream.
  proxy.cut();
  for (let i = 1; i <= 5; i++) {
    expected.push(`while away ${i}`);
    await publish(destination, expected.at(-1));
  }
  await within(page.waitForFunction(() => window.opens >= 2), 'EventSource to reconnect');
  for (let i = 1; i <= 3; i++) {
    expected.push(`after ${i}`);
    await publish(destination, expected.at(-1));
  }
  assert.deepEqual(await received(page, expected.length), expected);
  const state = await page.evaluate(() => ({ errors: window.errors, ids: window.lastIds }));
  assert.ok(state.errors >= 1, 'the page saw its connection drop');
  assert.equal(new Set(state.ids).size, expected.length, `one id per message: ${state.ids}`);
  // Nothing came twice: the next event is the next message.
  await publish(destination, 'last');
  assert.deepEqual(await received(page, expected.length + 1), [...expected, 'last']);
});
