// The chat example (`examples/chat`) driven by the real @stomp/stompjs, doing what its page
// does: join a room, list participants through a subscribe handler, chat, get errors on
// /user/queue/errors, and see a LEAVE when someone disconnects. Also checks the page and the
// stomp.js bundle it serves. Build it first: `cargo build -p example-chat`.

import assert from 'node:assert/strict';
import { test } from 'node:test';

import { startChat } from '../lib/chat.js';
import { connect, makeClient, receipt, within } from '../lib/harness.js';

let receipts = 0;

/**
 * Subscribes `client` to `destination` and waits for the subscription to be in effect (a
 * RECEIPT); resolves to a function returning the next message received there.
 */
async function next(client, destination) {
  const queue = [];
  const waiters = [];
  const id = `sub-${++receipts}`;
  const done = receipt(client, id);
  client.subscribe(
    destination,
    (m) => {
      const w = waiters.shift();
      if (w) w(m);
      else queue.push(m);
    },
    { receipt: id },
  );
  await done;
  return () =>
    within(
      new Promise((resolve) => (queue.length ? resolve(queue.shift()) : waiters.push(resolve))),
      `a message on ${destination}`,
    );
}

test('chat example: join, participants, chat, errors, leave', async (t) => {
  const chat = await startChat();
  t.after(() => chat.kill());

  const page = await within(fetch(chat.httpUrl), 'the page');
  assert.equal(page.status, 200);
  assert.match(await page.text(), /<script src="\/stomp.umd.min.js"><\/script>/);
  const js = await within(fetch(`${chat.httpUrl}stomp.umd.min.js`), 'stomp.js');
  assert.match(js.headers.get('content-type'), /javascript/);
  assert.match(await js.text(), /StompJs/);

  const wsUrl = chat.httpUrl.replace('http://', 'ws://') + 'ws';
  const ann = makeClient(wsUrl);
  const bob = makeClient(wsUrl);
  t.after(() => ann.deactivate({ force: true }));
  t.after(() => bob.deactivate({ force: true }));
  await connect(ann);
  await connect(bob);

  const annRoom = await next(ann, '/topic/chat.lobby');
  const bobRoom = await next(bob, '/topic/chat.lobby');
  const bobErrors = await next(bob, '/user/queue/errors');

  ann.publish({ destination: '/app/chat.lobby.join', body: JSON.stringify({ sender: 'ann' }) });
  assert.deepEqual(JSON.parse((await annRoom()).body), { type: 'JOIN', sender: 'ann', content: '' });
  assert.equal(JSON.parse((await bobRoom()).body).sender, 'ann');
  bob.publish({ destination: '/app/chat.lobby.join', body: JSON.stringify({ sender: 'bob' }) });
  assert.equal(JSON.parse((await annRoom()).body).sender, 'bob');
  assert.equal(JSON.parse((await bobRoom()).body).sender, 'bob');

  // A subscribe handler answers this subscription once; its RECEIPT may come before or after.
  const answered = new Promise((resolve) => bob.subscribe('/app/chat.lobby.participants', resolve));
  const participants = await within(answered, 'the participants');
  assert.deepEqual(JSON.parse(participants.body), ['ann', 'bob']);

  ann.publish({ destination: '/app/chat.lobby.send', body: JSON.stringify({ content: 'hi bob' }) });
  const expected = { type: 'CHAT', sender: 'ann', content: 'hi bob' };
  assert.deepEqual(JSON.parse((await annRoom()).body), expected);
  assert.deepEqual(JSON.parse((await bobRoom()).body), expected);

  bob.publish({ destination: '/app/chat.lobby.send', body: '{"text":1}' });
  const error = await bobErrors();
  assert.equal(error.headers.message, 'invalid JSON payload');
  assert.match(error.body, /missing field `content`/);
  assert.ok(bob.connected, 'the session stays usable after an error');

  await bob.deactivate();
  assert.deepEqual(JSON.parse((await annRoom()).body), { type: 'LEAVE', sender: 'bob', content: '' });
});
