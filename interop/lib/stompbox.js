// The `stompbox` binary under test, started on 127.0.0.1:0 with its `listening` line parsed, and
// bounded waits: shared by the npm interop suites (../stompjs, ../clients-node). Node built-ins
// only, so each suite's own dependencies stay its own.

import { spawn } from 'node:child_process';
import path from 'node:path';
import readline from 'node:readline';
import { fileURLToPath } from 'node:url';

/** Upper bound for any single wait (a loaded 2-core CI machine). */
export const WAIT_MS = 15_000;

const here = path.dirname(fileURLToPath(import.meta.url));
const repoRoot = path.resolve(here, '..', '..');

/**
 * The binary under test: $STOMPBOX_BIN, else $CARGO_TARGET_DIR/debug/stompbox (relative paths
 * resolved against the repository root, as cargo does), else <repo>/target/debug/stompbox.
 */
export function stompboxBin() {
  if (process.env.STOMPBOX_BIN) return path.resolve(process.env.STOMPBOX_BIN);
  const target = process.env.CARGO_TARGET_DIR
    ? path.resolve(repoRoot, process.env.CARGO_TARGET_DIR)
    : path.join(repoRoot, 'target');
  return path.join(target, 'debug', 'stompbox');
}

/** The documented startup line: `listening websocket=<url|disabled> tcp=<addr|disabled>`. */
const LISTENING = /listening websocket=(\S+) tcp=(\S+)/;

/** Rejects after `ms` with a message naming `what`; clears its timer either way. */
export function within(promise, what, ms = WAIT_MS) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/**
 * Starts `stompbox --ws-listen 127.0.0.1:0 --tcp-listen 127.0.0.1:0 ...args` with `env` added
 * to a copy of this process's environment from which every STOMPBOX_* variable is removed,
 * without the message store unless `env` turns it on.
 * Resolves to { wsUrl, tcpAddr, logs, stop(), kill() } once the listening line is printed.
 */
export async function startServer({ env = {}, args = [] } = {}) {
  const childEnv = Object.fromEntries(
    Object.entries(process.env).filter(([name]) => !name.startsWith('STOMPBOX_')),
  );
  // Servers started side by side must not share (or create) ./stompbox-data; a test that
  // wants the store passes its own STOMPBOX_STORE__* or --data-dir.
  Object.assign(childEnv, { RUST_LOG: 'info', STOMPBOX_STORE__ENABLED: 'false' }, env);
  const bin = stompboxBin();
  const child = spawn(
    bin,
    ['--ws-listen', '127.0.0.1:0', '--tcp-listen', '127.0.0.1:0', ...args],
    { env: childEnv, stdio: ['ignore', 'ignore', 'pipe'] },
  );
  const logs = [];
  const exited = new Promise((resolve) => {
    child.on('exit', (code, signal) => resolve({ code, signal }));
  });
  const listening = new Promise((resolve, reject) => {
    child.on('error', (e) => reject(new Error(`cannot start ${bin}: ${e.message}`)));
    readline.createInterface({ input: child.stderr }).on('line', (line) => {
      logs.push(line);
      const m = LISTENING.exec(line);
      if (m) resolve({ wsUrl: m[1], tcpAddr: m[2] });
    });
    exited.then(({ code, signal }) =>
      reject(new Error(`stompbox exited (${code ?? signal}) before listening:\n${logs.join('\n')}`)),
    );
  });
  const kill = () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  };
  let addresses;
  try {
    addresses = await within(listening, 'the listening line');
  } catch (e) {
    kill();
    throw e;
  }
  return {
    ...addresses,
    logs,
    exited,
    kill,
    /** SIGTERM, then the exit status; SIGKILL if it does not exit in time. */
    async stop() {
      child.kill('SIGTERM');
      try {
        return await within(exited, 'stompbox to exit after SIGTERM');
      } finally {
        kill();
      }
    },
  };
}

