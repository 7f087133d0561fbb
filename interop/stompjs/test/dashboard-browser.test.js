// The admin listener's live dashboard in headless Chromium: the page asks for the token (and
// says so when it is refused), then shows the node's charts, its queues and its connections as
// real @stomp/stompjs clients use it, and its Close button ends a session with ERROR `closed by
// an operator`. With STOMPBOX_DASHBOARD_SCREENSHOT=<file.png> it also saves a screenshot (the
// one in docs/operations.md was taken so). Chromium from lib/browser.js.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';


import { collect, connect, makeClient, receipt, startServer, within } from '../lib/harness.js';
import { launchChromium } from '../lib/browser.js';

const TOKEN = 'dashboard-test-token-0123456789';

let server;
let browser;
let adminOrigin;
before(async () => {
  server = await startServer({
    env: {
      STOMPBOX_ADMIN__ENABLED: 'true',
      STOMPBOX_ADMIN__TOKEN: TOKEN,
      STOMPBOX_ADMIN__LISTEN: '127.0.0.1:0',
    },
  });
  const line = server.logs.find((l) => /admin=\S+/.test(l));
  assert.ok(line, `no admin address in the listening line: ${server.logs.join('\n')}`);
  adminOrigin = `http://${/admin=(\S+)/.exec(line)[1]}`;
  browser = await launchChromium();
});
after(async () => {
  await browser?.close();
  server?.kill();
});

/** The cells' text of the row keyed `key` in table `table`, or null while it is not shown. */
function row(page, table, key) {
  return page.evaluate(
    ([table, key]) => {
      const tr = [...document.querySelectorAll(`#${table} tbody tr`)].find((r) => r.dataset.key === key);
      return tr ? [...tr.cells].map((c) => c.textContent) : null;
    },
    [table, key],
  );
}

test('the dashboard shows the node and closes a connection', async (t) => {
  // A consumer holding client-individual acks, and a producer: 12 queue messages, 3 topic ones.
  const alice = makeClient(server.wsUrl, { connectHeaders: { login: 'alice', passcode: 'x' } });
  const aliceErrors = [];
  await connect(alice);
  alice.onStompError = (frame) => aliceErrors.push(frame);
  const jobs = collect(alice, '/queue/jobs', 12, { ack: 'client-individual' });
  const producer = makeClient(server.wsUrl, { connectHeaders: { login: 'bob', passcode: 'x' } });
  await connect(producer);
  t.after(() => producer.deactivate());
  for (let i = 0; i < 12; i++) {
    producer.publish({ destination: '/queue/jobs', body: `job ${i}` });
  }
  for (let i = 0; i < 3; i++) producer.publish({ destination: '/topic/news', body: `news ${i}` });
  producer.publish({ destination: '/queue/jobs.later', body: 'waits', headers: { receipt: 'r1' } });
  await receipt(producer, 'r1');
  await jobs.messages;

  const context = await browser.newContext({ viewport: { width: 1300, height: 900 } });
  t.after(() => context.close());
  const page = await context.newPage();
  const problems = [];
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
  // The browser logs each refused request (401) itself; anything else is a problem.
  page.on('console', (m) => {
    if (m.type() === 'error' && !m.text().includes('401')) problems.push(`console: ${m.text()}`);
  });
  await page.goto(`${adminOrigin}/`);

  // A wrong token is refused and said so; the right one opens the dashboard.
  await page.fill('#token', 'not-the-token');
  await page.click('#login button');
  await within(
    page.waitForFunction(() => document.getElementById('login-error').textContent.includes('refused')),
    'the refusal to show',
  );
  assert.equal(await page.isVisible('#dashboard'), false);
  await page.fill('#token', TOKEN);
  await page.click('#login button');
  await within(page.waitForSelector('#dashboard', { state: 'visible' }), 'the dashboard');

  // Queues: the consumer holds all 12 unacknowledged; one message waits in the other queue.
  await within(
    page.waitForFunction(() => document.querySelector('#queues tbody tr[data-key="/queue/jobs.later"]')),
    'the queues table',
  );
  const [dest, depth, , inFlight, consumers, enqueued] = await row(page, 'queues', '/queue/jobs');
  assert.deepEqual([dest, depth, inFlight, consumers, enqueued], ['/queue/jobs', '0', '12', '1', '12']);
  assert.equal((await row(page, 'queues', '/queue/jobs.later'))[1], '1');

  // Connections: both sessions, with their users, transport and subscriptions.
  const users = await page.$$eval('#connections tbody tr', (rows) =>
    rows.map((r) => [r.cells[1].textContent, r.cells[3].textContent, r.cells[6].textContent]),
  );
  assert.deepEqual(users.sort(), [['alice', 'websocket', '1'], ['bob', 'websocket', '0']]);

  // Charts: two uPlot charts, fed by at least two samples (one rate).
  await within(page.waitForFunction(() => window.dashboard.samples >= 2), 'two samples', 10_000);
  assert.equal(await page.locator('.uplot canvas').count(), 2);
  const figures = await page.textContent('#figures');
  assert.match(figures, /16\s*messages received/, figures);

  if (process.env.STOMPBOX_DASHBOARD_SCREENSHOT) {
    await page.screenshot({ path: process.env.STOMPBOX_DASHBOARD_SCREENSHOT, fullPage: true });
  }

  // Close alice from the page: she gets the operator's ERROR; her row goes away, bob's stays;
  // her 12 unacknowledged messages go back to the queue.
  const aliceId = await page.evaluate(
    () => [...document.querySelectorAll('#connections tbody tr')].find((r) => r.cells[1].textContent === 'alice').dataset.key,
  );
  await page.click(`#connections tr[data-key="${aliceId}"] button.close`);
  await within(
    (async () => {
      while (aliceErrors.length === 0) await new Promise((r) => setTimeout(r, 20));
    })(),
    "alice's ERROR",
  );
  assert.equal(aliceErrors[0].headers.message, 'closed by an operator');
  assert.match(aliceErrors[0].body, /closed from the dashboard/);
  await within(
    page.waitForFunction(
      (id) => !document.querySelector(`#connections tr[data-key="${id}"]`)
        && document.querySelector('#queues tr[data-key="/queue/jobs"]')?.cells[1].textContent === '12',
      aliceId,
    ),
    'alice to leave the table and her messages to go back',
  );
  assert.equal((await row(page, 'connections', aliceId)), null);
  assert.deepEqual(problems, [], 'no script errors or blocked resources');
  await alice.deactivate();
});
