// /queue destinations with stompjs's own acknowledgement and transaction API: message.ack(),
// message.nack(), client.begin() / commit() / abort().

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';

import { Versions, collect, connect, makeClient, receipt, startServer, within } from '../lib/harness.js';

let server;
before(async () => {
  server = await startServer();
});
after(() => server?.kill());

/** A connected client, deactivated when the test ends. */
async function client(t, options = {}) {
  const c = makeClient(server.wsUrl, options);
  t.after(() => c.deactivate({ force: true }));
  await connect(c);
  return c;
}

/** SUBSCRIBE with a receipt; resolves once the subscription is in effect. */
async function subscribe(c, destination, onMessage, headers = {}) {
  const id = `sub-${destination}-${Math.random()}`;
  const done = receipt(c, id);
  const subscription = c.subscribe(destination, onMessage, { ...headers, receipt: id });
  await done;
  return subscription;
}

/** SEND with a receipt; resolves once the broker routed it. */
async function send(c, destination, body, headers = {}) {
  const id = `send-${Math.random()}`;
  const done = receipt(c, id);
  c.publish({ destination, body, headers: { ...headers, receipt: id } });
  await done;
}

for (const version of ['1.0', '1.1', '1.2']) {
  test(`STOMP ${version}: message.ack() lets the next message through prefetch-count 1`, async (t) => {
    const consumer = await client(t, { stompVersions: new Versions([version]) });
    const destination = `/queue/interop-ack-${version}`;
    const got = [];
    let all;
    const done = new Promise((resolve) => { all = resolve; });
    await subscribe(consumer, destination, (message) => {
      got.push(message.body);
      // Without this ACK the second message would never arrive (prefetch-count 1).
      message.ack();
      if (got.length === 3) all();
    }, { ack: 'client-individual', 'prefetch-count': '1' });
    const producer = await client(t);
    for (const n of [1, 2, 3]) await send(producer, destination, `m${n}`);
    await within(done, `three acknowledged messages on ${destination}`);
    assert.deepEqual(got, ['m1', 'm2', 'm3']);
  });
}

test('without message.ack() a prefetch-count 1 consumer gets one message only', async (t) => {
  const consumer = await client(t);
  const got = [];
  await subscribe(consumer, '/queue/interop-noack', (m) => got.push(m.body), {
    ack: 'client', 'prefetch-count': '1',
  });
  const producer = await client(t);
  await send(producer, '/queue/interop-noack', 'first');
  await send(producer, '/queue/interop-noack', 'second');
  // A round trip on the consumer's own connection: what was routed to it has arrived.
  await send(consumer, '/topic/interop-sync', '');
  assert.deepEqual(got, ['first']);
});

test('message.nack() redelivers to the other consumer, marked redelivered', async (t) => {
  const a = await client(t);
  const b = await client(t);
  const seen = [];
  let redelivered;
  const again = new Promise((resolve) => { redelivered = resolve; });
  const handler = (who) => (message) => {
    seen.push({
      who,
      id: message.headers['message-id'],
      flag: message.headers.redelivered,
      count: message.headers['x-delivery-count'],
    });
    if (seen.length === 1) message.nack();
    else { message.ack(); redelivered(); }
  };
  await subscribe(a, '/queue/interop-nack', handler('a'), { ack: 'client-individual' });
  await subscribe(b, '/queue/interop-nack', handler('b'), { ack: 'client-individual' });
  const producer = await client(t);
  await send(producer, '/queue/interop-nack', 'hot potato');
  await within(again, 'the redelivery');
  assert.equal(seen.length, 2);
  assert.notEqual(seen[0].who, seen[1].who, 'the other consumer gets it');
  assert.equal(seen[0].id, seen[1].id, 'same message-id');
  // Every queue delivery says whether it is a first one, as RabbitMQ's do.
  assert.equal(seen[0].flag, 'false');
  assert.equal(seen[1].flag, 'true');
  assert.deepEqual([seen[0].count, seen[1].count], ['0', '1']);
});

test('unacknowledged messages go to another consumer when a client disconnects', async (t) => {
  const quitter = makeClient(server.wsUrl);
  await connect(quitter);
  const held = collect(quitter, '/queue/interop-quit', 2, { ack: 'client' });
  const producer = await client(t);
  await send(producer, '/queue/interop-quit', 'one');
  await send(producer, '/queue/interop-quit', 'two');
  const kept = await held.messages;
  assert.deepEqual(kept.map((m) => m.body), ['one', 'two']);
  await quitter.deactivate();
  const heir = await client(t);
  const { messages } = collect(heir, '/queue/interop-quit', 2, { ack: 'client' });
  const got = await messages;
  assert.deepEqual(got.map((m) => m.body), ['one', 'two']);
  assert.ok(got.every((m) => m.headers.redelivered === 'true'));
  got[1].ack(); // client mode: acknowledges both
});

test('client.begin() / commit(): SENDs take effect at COMMIT', async (t) => {
  const consumer = await client(t);
  const got = [];
  await subscribe(consumer, '/queue/interop-tx', (m) => got.push(m.body));
  const producer = await client(t);
  const tx = producer.begin();
  producer.publish({ destination: '/queue/interop-tx', body: 'a', headers: { transaction: tx.id } });
  producer.publish({ destination: '/queue/interop-tx', body: 'b', headers: { transaction: tx.id } });
  await send(producer, '/topic/interop-sync', '');
  await send(consumer, '/topic/interop-sync', '');
  assert.deepEqual(got, [], 'nothing before COMMIT');
  tx.commit();
  await send(producer, '/topic/interop-sync', '');
  await send(consumer, '/topic/interop-sync', '');
  assert.deepEqual(got, ['a', 'b']);
});

test('client.begin() / abort(): SENDs are discarded', async (t) => {
  const consumer = await client(t);
  const got = [];
  let marker;
  const done = new Promise((resolve) => { marker = resolve; });
  await subscribe(consumer, '/queue/interop-abort', (m) => {
    got.push(m.body);
    if (m.body === 'after') marker();
  });
  const producer = await client(t);
  const tx = producer.begin('tx-abort');
  assert.equal(tx.id, 'tx-abort');
  producer.publish({ destination: '/queue/interop-abort', body: 'never', headers: { transaction: tx.id } });
  tx.abort();
  await send(producer, '/queue/interop-abort', 'after');
  await within(done, 'the message after ABORT');
  assert.deepEqual(got, ['after']);
});

test('message.ack({ transaction }) takes effect at commit()', async (t) => {
  const consumer = await client(t);
  const got = [];
  await subscribe(consumer, '/queue/interop-txack', (m) => got.push(m), {
    ack: 'client-individual', 'prefetch-count': '1',
  });
  const producer = await client(t);
  await send(producer, '/queue/interop-txack', 'first');
  await send(producer, '/queue/interop-txack', 'second');
  await send(consumer, '/topic/interop-sync', '');
  assert.equal(got.length, 1);
  const tx = consumer.begin();
  got[0].ack({ transaction: tx.id });
  await send(consumer, '/topic/interop-sync', '');
  assert.equal(got.length, 1, 'the ACK is held until COMMIT');
  tx.commit();
  await send(consumer, '/topic/interop-sync', '');
  assert.deepEqual(got.map((m) => m.body), ['first', 'second']);
});

test('a duplicate transaction id is an ERROR', async (t) => {
  const c = await client(t);
  const error = new Promise((resolve) => { c.onStompError = resolve; });
  c.begin('same');
  c.begin('same');
  const frame = await within(error, 'ERROR for a duplicate transaction');
  assert.equal(frame.headers.message, 'duplicate transaction id');
});

test('a message NACKed max_deliveries times lands in /queue/dlq.<name>', async (t) => {
  const own = await startServer({ env: { STOMPBOX_BROKER__QUEUES__MAX_DELIVERIES: '2' } });
  t.after(() => own.kill());
  const c = makeClient(own.wsUrl);
  t.after(() => c.deactivate({ force: true }));
  await connect(c);
  const dead = collect(c, '/queue/dlq.interop-poison', 1);
  let deliveries = 0;
  await subscribe(c, '/queue/interop-poison', (m) => { deliveries += 1; m.nack(); }, {
    ack: 'client-individual',
  });
  await send(c, '/queue/interop-poison', 'poison');
  const [letter] = await dead.messages;
  assert.equal(letter.body, 'poison');
  assert.equal(letter.headers['x-original-destination'], '/queue/interop-poison');
  assert.equal(deliveries, 2);
});
