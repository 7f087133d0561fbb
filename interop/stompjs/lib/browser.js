// Debian's Chromium (/usr/bin/chromium, or $CHROMIUM_BIN), headless through playwright-core, for
// the browser tests: one place for where it is, how it is started and what it may reach.

import assert from 'node:assert/strict';
import fs from 'node:fs';

import { chromium } from 'playwright-core';

import { within } from '../../lib/stompbox.js';

const CHROMIUM = process.env.CHROMIUM_BIN || '/usr/bin/chromium';

// Headless, and nothing that reaches outside this machine (its network is closed).
const CHROMIUM_ARGS = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

// A page that Playwright's request routing fulfils counts as public to Chromium, whatever its
// origin, and Local/Private Network Access then refuses its requests (WebSocket included) to a
// "more private" address such as the loopback server under test. Tests whose pages are routed
// start Chromium with this; a real deployment has page and server on the same kind of origin.
export const PRIVATE_NETWORK_ALLOWED =
  '--disable-features=BlockInsecurePrivateNetworkRequests,PrivateNetworkAccessSendPreflights,LocalNetworkAccessChecks';

/** Starts Chromium with `extraArgs` after the usual ones; fails clearly when it is missing. */
export function launchChromium(extraArgs = []) {
  assert.ok(
    fs.existsSync(CHROMIUM),
    `no Chromium at ${CHROMIUM}: run ./scripts/test (installs Debian's chromium) or set CHROMIUM_BIN`,
  );
  return within(
    chromium.launch({ executablePath: CHROMIUM, headless: true, args: [...CHROMIUM_ARGS, ...extraArgs] }),
    'Chromium to start',
  );
}
