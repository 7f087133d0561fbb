// The chat example's own page (examples/chat/static/index.html) in headless Chromium: two
// browser users join a room, see each other, chat, and one leaves; one over WebSocket, the
// other over SockJS (`/?transport=sockjs`, the page's mode for Spring's withSockJS() pages). This is the browser's own
// WebSocket (strict about the echoed subprotocol) and the stomp.js UMD bundle the example
// serves, not Node's `ws`. Chromium is Debian's, started by lib/browser.js;
// ./scripts/test installs it where it is missing.

import assert from 'node:assert/strict';
import { test } from 'node:test';

import { startChat } from '../lib/chat.js';
import { launchChromium } from '../lib/browser.js';

const WAIT_MS = 15_000;


/** Opens the page in a fresh browser context and joins `room` as `name`. */
async function join(browser, url, name, room) {
  const context = await browser.newContext();
  const page = await context.newPage();
  const problems = [];
  page.on('pageerror', (e) => problems.push(e.message));
  await page.goto(url);
  await page.fill('#name', name);
  await page.fill('#room', room);
  await page.click('#join button');
  await page.locator('#send').waitFor({ state: 'visible', timeout: WAIT_MS });
  return { context, page, problems };
}

function line(page, text) {
  return page.locator('#messages li', { hasText: text }).waitFor({ timeout: WAIT_MS });
}

test('chat page in headless Chromium: join, participants, chat, leave (WebSocket and SockJS)', async (t) => {
  const chat = await startChat();
  t.after(() => chat.kill());
  const browser = await launchChromium();
  t.after(() => browser.close());

  const ann = await join(browser, chat.httpUrl, 'ann', 'crag');
  await line(ann.page, 'ann joined');
  // The browser accepted the subprotocol the server echoed: the highest stomp.js offered.
  assert.equal(await ann.page.evaluate(() => client.webSocket.protocol), 'v12.stomp');

  const bob = await join(browser, `${chat.httpUrl}?transport=sockjs`, 'bob', 'crag');
  // SockJS's own socket, on its first choice of transport.
  assert.equal(await bob.page.evaluate(() => client.webSocket.transport), 'websocket');
  assert.equal(await bob.page.evaluate(() => client.webSocket.url.endsWith('/sockjs')), true);
  await line(ann.page, 'bob joined');
  await line(bob.page, 'bob joined');
  // The subscribe handler answered bob's page with who was already there.
  await bob.page
    .locator('#participants', { hasText: 'Already here: ann' })
    .waitFor({ timeout: WAIT_MS });

  await ann.page.fill('#text', 'anyone up for the north face?');
  await ann.page.click('#send button');
  await line(bob.page, 'ann: anyone up for the north face?');
  await line(ann.page, 'ann: anyone up for the north face?');

  await bob.context.close();
  await line(ann.page, 'bob left');

  assert.deepEqual([...ann.problems, ...bob.problems], [], 'no script errors on the page');
  const errors = await ann.page.locator('#messages li.error').count();
  assert.equal(errors, 0, 'no error lines on the page');
});
