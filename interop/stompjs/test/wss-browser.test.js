// STOMP over wss:// with a JWT, in headless Chromium and in Node: certificates from a CA this
// test makes (openssl), a token in the WebSocket URL (browsers cannot set headers on a
// WebSocket), the page's origin on the server's allow-list. The browser user receives its own
// /user/queue messages and is refused another user's.
//
// Node's stompjs (over `ws`) verifies the server against the test CA. Chromium is told to trust
// exactly the server's key (--ignore-certificate-errors-spki-list with its SPKI hash), since
// adding a CA to Chromium's store needs NSS tools.

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash, X509Certificate } from 'node:crypto';
import fs from 'node:fs';
import https from 'node:https';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';

import WebSocket from 'ws';

import { connect, hs256Token, makeClient, startServer, within } from '../lib/harness.js';
import { launchChromium } from '../lib/browser.js';

const require = createRequire(import.meta.url);
const SECRET = 'browser interop secret, long enough for HS256';
const WAIT_MS = 15_000;

const token = (sub, roles) => hs256Token(SECRET, { sub, roles });

/** A CA and a server certificate for 127.0.0.1 signed by it, in `dir`. */
function makeCertificates(dir) {
  const run = (...args) => execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' });
  run('req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes',
    '-keyout', 'ca.key', '-out', 'ca.pem', '-days', '2', '-subj', '/CN=stompbox interop CA');
  run('req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes',
    '-keyout', 'server.key', '-out', 'server.csr', '-subj', '/CN=127.0.0.1');
  fs.writeFileSync(path.join(dir, 'san.ext'), 'subjectAltName=IP:127.0.0.1\n');
  run('x509', '-req', '-in', 'server.csr', '-CA', 'ca.pem', '-CAkey', 'ca.key',
    '-CAcreateserial', '-out', 'server.pem', '-days', '2', '-extfile', 'san.ext');
  const file = (name) => path.join(dir, name);
  const spki = new X509Certificate(fs.readFileSync(file('server.pem'))).publicKey
    .export({ type: 'spki', format: 'der' });
  return {
    ca: fs.readFileSync(file('ca.pem')),
    cert: file('server.pem'),
    key: file('server.key'),
    spkiHash: createHash('sha256').update(spki).digest('base64'),
  };
}

/** An https server for the page and the stomp.js bundle, on 127.0.0.1. */
async function servePage(certs) {
  // The package's CommonJS entry is its UMD bundle: what a page loads with a script tag.
  const bundle = fs.readFileSync(require.resolve('@stomp/stompjs'));
  const page = '<!doctype html><title>notifications</title><script src="/stomp.js"></script>';
  const server = https.createServer(
    { cert: fs.readFileSync(certs.cert), key: fs.readFileSync(certs.key) },
    (req, res) => {
      const js = req.url === '/stomp.js';
      res.writeHead(200, { 'content-type': js ? 'text/javascript' : 'text/html' });
      res.end(js ? bundle : page);
    },
  );
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { server, origin: `https://127.0.0.1:${server.address().port}` };
}

test('stompjs in Chromium over wss:// with a JWT: own notifications, another user refused', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'stompbox-wss-'));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  const certs = makeCertificates(dir);
  const page = await servePage(certs);
  t.after(() => page.server.close());

  const config = path.join(dir, 'stompbox.toml');
  fs.writeFileSync(config, `
[websocket]
allowed_origins = ["${page.origin}"]

[websocket.tls]
enabled = true
cert_file = "${certs.cert}"
key_file = "${certs.key}"

[auth.jwt]
secret = "${SECRET}"

[[permissions]]
roles = ["notifier"]
allow = ["send"]
destinations = ["/user/#"]

[[permissions]]
roles = ["user"]
allow = ["send", "subscribe"]
destinations = ["/user/{user}/#"]
`);
  const server = await startServer({ args: ['--config', config] });
  t.after(() => server.kill());
  assert.match(server.wsUrl, /^wss:\/\/127\.0\.0\.1:\d+\/ws$/);

  const browser = await launchChromium([`--ignore-certificate-errors-spki-list=${certs.spkiHash}`]);
  t.after(() => browser.close());
  const tab = await (await browser.newContext()).newPage();
  await tab.goto(page.origin);

  // Alice's page: the token in the URL's query, as a browser must carry it.
  const url = `${server.wsUrl}?access_token=${token('alice', ['user'])}`;
  await tab.evaluate((brokerURL) => {
    window.received = [];
    window.errors = [];
    window.client = new StompJs.Client({ brokerURL, reconnectDelay: 0 });
    window.connected = new Promise((resolve) => {
      client.onConnect = () => {
        client.subscribe('/user/queue/notifications', (m) => received.push(m.body), { receipt: 'sub' });
        client.watchForReceipt('sub', resolve);
      };
    });
    client.onStompError = (frame) => errors.push(frame.headers.message);
    client.activate();
  }, url);
  await within(tab.evaluate(() => window.connected), 'the browser to connect and subscribe', WAIT_MS);
  assert.equal(await tab.evaluate(() => client.webSocket.protocol), 'v12.stomp');

  // A notifier in Node, verifying the server against the test CA.
  const notifier = makeClient(server.wsUrl, {
    connectHeaders: { passcode: token('matchmaker', ['notifier']) },
    webSocketFactory: () => new WebSocket(server.wsUrl, ['v12.stomp'], { ca: certs.ca }),
  });
  t.after(() => notifier.deactivate({ force: true }));
  await connect(notifier);
  notifier.publish({ destination: '/user/alice/queue/notifications', body: 'match found' });
  await tab.waitForFunction(() => received.includes('match found'), null, { timeout: WAIT_MS });

  await tab.evaluate(() => client.publish({ destination: '/user/bob/queue/notifications', body: 'x' }));
  await tab.waitForFunction(() => errors.length > 0, null, { timeout: WAIT_MS });
  assert.deepEqual(await tab.evaluate(() => errors), ['access refused: /user/bob/queue/notifications']);
});
