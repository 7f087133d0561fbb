// Connect with each STOMP version stompjs can offer; subscribe, publish, receipts.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';

import { Versions, collect, connect, makeClient, receipt, startServer, within } from '../lib/harness.js';

let server;
before(async () => {
  server = await startServer();
});
after(() => server?.kill());

for (const version of ['1.0', '1.1', '1.2']) {
  test(`STOMP ${version}: subprotocol, CONNECTED, subscribe, publish, receipt`, async (t) => {
    const client = makeClient(server.wsUrl, { stompVersions: new Versions([version]) });
    t.after(() => client.deactivate({ force: true }));
    const connected = await connect(client);
    assert.equal(connected.headers.version, version);
    assert.equal(client.webSocket.protocol, `v${version.replace('.', '')}.stomp`);

    const destination = `/topic/versions-${version}`;
    const { messages } = collect(client, destination, 2);
    // Receipts are a 1.x feature of every version stompjs speaks.
    const subscribed = receipt(client, `sub-${version}`);
    client.publish({ destination: '/topic/unrelated', headers: { receipt: `sub-${version}` } });
    await subscribed;

    const published = receipt(client, `pub-${version}`);
    client.publish({ destination, body: 'first' });
    client.publish({ destination, body: 'second ✓', headers: { receipt: `pub-${version}` } });
    await published;
    const [first, second] = await messages;
    assert.equal(first.body, 'first');
    assert.equal(second.body, 'second ✓');
    assert.equal(first.headers.destination, destination);
    if (version !== '1.0') assert.ok(first.headers['message-id']);
  });
}

test('stompjs defaults offer all three versions and get 1.2', async (t) => {
  const client = makeClient(server.wsUrl);
  t.after(() => client.deactivate({ force: true }));
  const connected = await connect(client);
  assert.equal(connected.headers.version, '1.2');
  assert.equal(client.webSocket.protocol, 'v12.stomp');
  assert.match(connected.headers.server ?? '', /^stompbox\//);
});

test('two clients: one publishes, the other receives, receipts on SUBSCRIBE', async (t) => {
  const a = makeClient(server.wsUrl);
  const b = makeClient(server.wsUrl);
  t.after(() => Promise.all([a.deactivate({ force: true }), b.deactivate({ force: true })]));
  await Promise.all([connect(a), connect(b)]);
  const subscribed = receipt(b, 'b-sub');
  const { messages } = collect(b, '/topic/pair', 3, { receipt: 'b-sub' });
  await subscribed;
  for (const n of [1, 2, 3]) a.publish({ destination: '/topic/pair', body: `n${n}` });
  const got = await messages;
  assert.deepEqual(got.map((m) => m.body), ['n1', 'n2', 'n3']);
  // Unsubscribe with a receipt: nothing more arrives on it afterwards.
  const gone = receipt(b, 'b-unsub');
  b.unsubscribe(got[0].headers.subscription, { receipt: 'b-unsub' });
  await within(gone, 'unsubscribe receipt');
});
