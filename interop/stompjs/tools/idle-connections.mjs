// Opens N idle STOMP-over-WebSocket sessions to measure the server's memory per connection.
//
// Run: node tools/idle-connections.mjs ws://127.0.0.1:PORT/ws 3000
// then read the server's VmRSS in /proc/PID/status; press Enter (or close stdin) to exit.
// Loopback only; gives up after 60 s.

import WebSocket from 'ws';

const [url, count] = [process.argv[2], Number(process.argv[3] ?? 1000)];
if (!url?.startsWith('ws://127.') && !url?.startsWith('ws://localhost')) {
  console.error('usage: idle-connections.mjs ws://127.0.0.1:PORT/ws [N]  (loopback only)');
  process.exit(2);
}
const giveUp = setTimeout(() => {
  console.error(`only ${connected} of ${count} connected after 60 s`);
  process.exit(1);
}, 60_000);
let connected = 0;
const sockets = [];
await new Promise((resolve, reject) => {
  for (let i = 0; i < count; i++) {
    const ws = new WebSocket(url, ['v12.stomp']);
    sockets.push(ws);
    ws.on('open', () => ws.send('CONNECT\naccept-version:1.2\nhost:x\nheart-beat:0,0\n\n\0'));
    ws.once('message', () => {
      if (++connected === count) resolve();
    });
    ws.on('error', reject);
  }
});
clearTimeout(giveUp);
console.log(`connected ${connected}`);
process.stdin.once('data', () => process.exit(0));
process.stdin.once('end', () => process.exit(0));
