// Starts the chat example (`examples/chat`) for the tests that drive it: with stomp.js in Node
// (test/chat-example.test.js) and its own page in headless Chromium (test/chat-page.test.js).

import { spawn } from 'node:child_process';
import path from 'node:path';
import readline from 'node:readline';

import { stompboxBin, within } from './harness.js';

/** `example-chat` next to the stompbox binary ($EXAMPLE_CHAT_BIN overrides). */
export function chatBin() {
  if (process.env.EXAMPLE_CHAT_BIN) return path.resolve(process.env.EXAMPLE_CHAT_BIN);
  return path.join(path.dirname(stompboxBin()), 'example-chat');
}

/** Starts the example on 127.0.0.1:0; resolves to { httpUrl, kill() } once it prints its URL. */
export async function startChat() {
  const child = spawn(chatBin(), [], {
    env: { ...process.env, ADDR: '127.0.0.1:0' },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const kill = () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  };
  const started = new Promise((resolve, reject) => {
    child.on('error', (e) => reject(new Error(`cannot start ${chatBin()}: ${e.message}`)));
    readline.createInterface({ input: child.stdout }).on('line', (line) => {
      const m = /chat on (http:\/\/\S+\/)/.exec(line);
      if (m) resolve(m[1]);
    });
  });
  try {
    return { httpUrl: await within(started, 'the chat URL'), kill };
  } catch (e) {
    kill();
    throw e;
  }
}
