// The admin dashboard: polls the admin API every two seconds with the token the operator gave
// and draws the node's recent history (GET /api/history) with uPlot, its queues and its
// connections. Text from the node (user names, destinations) is only ever set as textContent.
'use strict';

const REFRESH_MS = 2000;
const TOKEN_KEY = 'stompbox-admin-token';

// What tests read: how many refreshes completed and how many samples the charts hold.
window.dashboard = { refreshes: 0, samples: 0, lastError: null };

const $ = (id) => document.getElementById(id);
let timer = null;
let charts = null;

class Refused extends Error {}

async function api(method, path) {
  const token = sessionStorage.getItem(TOKEN_KEY) || '';
  const response = await fetch(path, { method, headers: { Authorization: `Bearer ${token}` } });
  if (response.status === 401) throw new Refused('the admin API refused this token');
  const body = response.status === 204 ? null : await response.json().catch(() => null);
  if (!response.ok) throw new Error((body && body.error) || `${method} ${path}: ${response.status}`);
  return body;
}

function showLogin(message) {
  clearTimeout(timer);
  $('dashboard').hidden = true;
  $('login').hidden = false;
  $('login-error').textContent = message || '';
  $('token').focus();
}

function cell(text, className) {
  const td = document.createElement('td');
  td.textContent = text;
  if (className) td.className = className;
  return td;
}

function fillTable(id, rows, columns, emptyText) {
  const body = $(id).tBodies[0];
  body.replaceChildren();
  if (rows.length === 0) {
    const tr = document.createElement('tr');
    const td = cell(emptyText, 'empty');
    td.colSpan = $(id).tHead.rows[0].cells.length;
    tr.append(td);
    body.append(tr);
    return;
  }
  for (const row of rows) {
    const tr = document.createElement('tr');
    tr.dataset.key = columns.key(row);
    for (const render of columns.cells) tr.append(render(row));
    body.append(tr);
  }
}

function since(ms) {
  const s = Math.max(0, Math.round((Date.now() - ms) / 1000));
  if (s < 120) return `${s} s ago`;
  if (s < 7200) return `${Math.round(s / 60)} min ago`;
  return `${Math.round(s / 3600)} h ago`;
}

function uptime(s) {
  if (s < 120) return `${s} s`;
  if (s < 7200) return `${Math.floor(s / 60)} min`;
  if (s < 172800) return `${Math.floor(s / 3600)} h`;
  return `${Math.floor(s / 86400)} days`;
}

function figures(overview) {
  const items = [
    ['sessions', overview.sessions],
    ['queues', overview.queues],
    ['messages received', overview.messages_received.toLocaleString()],
    ['messages delivered', overview.messages_delivered.toLocaleString()],
    ['uptime', uptime(overview.uptime_seconds)],
  ];
  $('figures').replaceChildren(...items.map(([name, value]) => {
    const div = document.createElement('div');
    div.className = 'figure';
    const b = document.createElement('b');
    b.textContent = value;
    const span = document.createElement('span');
    span.textContent = name;
    div.append(b, span);
    return div;
  }));
  $('node').textContent = `version ${overview.version}${overview.shutting_down ? ' — draining' : ''}`;
}

function makeCharts() {
  const width = Math.min(620, Math.max(320, (window.innerWidth - 130) / 2));
  const common = { width, height: 220, legend: { live: false } };
  return {
    rates: new uPlot({
      ...common,
      series: [{}, { label: 'received/s', stroke: '#2f6fdf', width: 2 },
        { label: 'delivered/s', stroke: '#1f9d55', width: 2 }],
    }, [[], [], []], $('rates-chart')),
    load: new uPlot({
      ...common,
      series: [{}, { label: 'sessions', stroke: '#7a3fd1', width: 2 },
        { label: 'queued', stroke: '#d9822b', width: 2 }],
    }, [[], [], []], $('load-chart')),
  };
}

function drawHistory(history) {
  const samples = history.samples;
  const t = samples.map((s) => s.at_ms / 1000);
  charts.rates.setData([t, samples.map((s) => s.received_per_second),
    samples.map((s) => s.delivered_per_second)]);
  charts.load.setData([t, samples.map((s) => s.sessions), samples.map((s) => s.queued)]);
  window.dashboard.samples = samples.length;
}

async function closeConnection(id, button) {
  button.disabled = true;
  const reason = encodeURIComponent('closed from the dashboard');
  try {
    await api('DELETE', `/api/connections/${id}?reason=${reason}`);
    $('status').textContent = `session ${id} is being closed`;
  } catch (e) {
    $('status').textContent = e.message;
  }
  refresh();
}

function closeButton(connection) {
  const td = document.createElement('td');
  const button = document.createElement('button');
  button.className = 'close';
  button.type = 'button';
  button.textContent = 'Close';
  button.title = `End session ${connection.id} with ERROR "closed by an operator"`;
  button.addEventListener('click', () => closeConnection(connection.id, button));
  td.append(button);
  return td;
}

async function refresh() {
  clearTimeout(timer);
  try {
    const [overview, history, queues, connections] = await Promise.all([
      api('GET', '/api/overview'),
      api('GET', '/api/history'),
      api('GET', '/api/queues'),
      api('GET', '/api/connections'),
    ]);
    $('login').hidden = true;
    $('dashboard').hidden = false;
    if (!charts) charts = makeCharts();
    figures(overview);
    drawHistory(history);
    fillTable('queues', queues, {
      key: (q) => q.destination,
      cells: [(q) => cell(q.destination), (q) => cell(q.depth), (q) => cell(q.on_disk),
        (q) => cell(q.in_flight), (q) => cell(q.consumers), (q) => cell(q.enqueued),
        (q) => cell(q.delivered), (q) => cell(q.acked), (q) => cell(q.dead_lettered),
        (q) => cell(q.expired)],
    }, 'no queues on this node');
    fillTable('connections', connections, {
      key: (c) => String(c.id),
      cells: [(c) => cell(c.id), (c) => cell(c.user ?? '(anonymous)', 'text'),
        (c) => cell(c.address ?? '', 'text'), (c) => cell(c.transport, 'text'),
        (c) => cell(c.version), (c) => cell(since(c.connected_at_ms)), (c) => cell(c.subscriptions),
        (c) => cell(`${c.outbox_frames} (${c.outbox_bytes} B)`), closeButton],
    }, 'no connected sessions');
    $('status').textContent = `updated ${new Date().toLocaleTimeString()}`;
    window.dashboard.refreshes += 1;
    window.dashboard.lastError = null;
  } catch (e) {
    window.dashboard.lastError = e.message;
    if (e instanceof Refused) {
      showLogin(e.message);
      return;
    }
    $('status').textContent = `cannot reach the node: ${e.message}`;
  }
  timer = setTimeout(refresh, REFRESH_MS);
}

$('login').addEventListener('submit', (event) => {
  event.preventDefault();
  sessionStorage.setItem(TOKEN_KEY, $('token').value);
  $('login-error').textContent = '';
  refresh();
});

if (sessionStorage.getItem(TOKEN_KEY)) refresh();
else showLogin();
