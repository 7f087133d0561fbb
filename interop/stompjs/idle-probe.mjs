import WebSocket from 'ws';
const [url, n] = [process.argv[2], Number(process.argv[3])];
let connected = 0;
const sockets = [];
await new Promise((resolve, reject) => {
  for (let i = 0; i < n; i++) {
    const ws = new WebSocket(url, ['v12.stomp']);
    sockets.push(ws);
    ws.on('open', () => ws.send('CONNECT\naccept-version:1.2\nhost:x\nheart-beat:0,0\n\n\0'));
    ws.on('message', () => { if (++connected === n) resolve(); });
    ws.on('error', reject);
  }
  setTimeout(() => reject(new Error(`only ${connected}`)), 60000);
});
console.log('connected', connected);
process.stdin.once('data', () => process.exit(0));
