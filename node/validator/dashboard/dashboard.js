// The validator's dashboard: a snapshot and then one event per change from
// /api/v1/events, applied to a view of the executors that every table is
// drawn from. No framework, nothing fetched but this validator's API; the
// DOM is built with textContent only.
'use strict';

const MAX_ROWS = 500; // executors drawn; the counts cover them all

const view = {
  executors: new Map(), // peer id -> executor (the API's JSON)
  stats: null,
  version: '–',
  lastChange: 0, // ms, local clock
  skew: 0, // validator's clock minus ours, ms
};

const $ = (id) => document.getElementById(id);

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === 'class') e.className = v;
    else if (k.startsWith('data-') || k === 'title') e.setAttribute(k, v);
    else e[k] = v;
  }
  for (const c of children) {
    if (c === null || c === undefined) continue;
    e.append(typeof c === 'string' || typeof c === 'number' ? document.createTextNode(String(c)) : c);
  }
  return e;
}

// Times: relative, refreshed every second from data-ts.
function ago(ms) {
  if (!ms) return '–';
  const s = Math.max(0, Math.round((Date.now() + view.skew - ms) / 1000));
  if (s < 60) return `${s} s ago`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${s % 60} s ago`;
  if (s < 86400) return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min ago`;
  return `${Math.floor(s / 86400)} d ago`;
}
function timeCell(ms) {
  return el('td', { 'data-ts': String(ms || 0), title: ms ? new Date(ms).toISOString() : '' }, ago(ms));
}
function refreshTimes() {
  for (const td of document.querySelectorAll('[data-ts]')) td.textContent = ago(Number(td.dataset.ts));
  if (view.lastChange) $('updated').textContent = ago(view.lastChange + view.skew);
}

function shortPeer(id) {
  return id.length > 20 ? `${id.slice(0, 10)}…${id.slice(-6)}` : id;
}

// Wei amounts can pass 2^53: compared as BigInt.
function minMax(values) {
  let lo = null;
  let hi = null;
  for (const v of values) {
    const b = BigInt(v);
    if (lo === null || b < lo) lo = b;
    if (hi === null || b > hi) hi = b;
  }
  if (lo === null) return '–';
  return lo === hi ? lo.toString() : `${lo}–${hi}`;
}

function statusOf(x) {
  return x.verified ? x.status : 'unverified';
}

// ---- drawing ----

let drawPending = false;
function schedule() {
  if (drawPending) return;
  drawPending = true;
  requestAnimationFrame(() => {
    drawPending = false;
    draw();
  });
}

function draw() {
  drawCards();
  drawModels();
  drawExecutors();
  $('version').textContent = view.version;
  refreshTimes();
}

const CARDS = [
  ['executors', 'Executors'], ['healthy', 'Healthy', 'ok'], ['overloaded', 'Overloaded', 'warn'],
  ['stale', 'Stale', 'bad'], ['unverified', 'Unverified'], ['models', 'Models'],
  ['announcements_accepted', 'Announcements accepted'], ['heartbeats_accepted', 'Heartbeats accepted'],
  ['announcements_pulled', 'Announcements pulled'], ['messages_rejected', 'Messages rejected'],
  ['messages_ignored', 'Messages ignored'], ['messages_dropped', 'Messages dropped'],
  ['queries_served', 'Queries served'], ['executors_removed', 'Executors removed'],
  ['executors_evicted', 'Executors evicted'], ['subscribers', 'Feed subscribers'], ['uptime_seconds', 'Uptime'],
];

function uptime(s) {
  const d = Math.floor(s / 86400);
  const h = Math.floor((s % 86400) / 3600);
  const m = Math.floor((s % 3600) / 60);
  if (d) return `${d} d ${h} h`;
  if (h) return `${h} h ${m} min`;
  return `${m} min ${s % 60} s`;
}

function drawCards() {
  const s = view.stats;
  if (!s) return;
  const cards = CARDS.map(([key, label, tone]) => {
    const v = key === 'uptime_seconds' ? uptime(s[key] || 0) : Number(s[key] || 0).toLocaleString('en');
    return el('div', { class: tone && s[key] > 0 ? tone : '', 'data-key': key }, el('dt', {}, label), el('dd', {}, v));
  });
  $('cards').replaceChildren(...cards);
  $('peer').textContent = s.peer_id;
  $('peer').title = (s.addrs || []).join('\n');
  $('network').textContent = s.network;
}

function drawModels() {
  const models = new Map();
  for (const x of view.executors.values()) {
    for (const m of x.models) {
      let r = models.get(m.model_id);
      if (!r) {
        r = { id: m.model_id, executors: 0, healthy: 0, overloaded: 0, stale: 0, unverified: 0, used: 0, cap: 0, inp: [], out: [] };
        models.set(m.model_id, r);
      }
      if (!x.verified) {
        r.unverified++;
        continue;
      }
      r.executors++;
      r[m.status] = (r[m.status] || 0) + 1;
      if (m.status !== 'stale') {
        r.used += m.active + m.queued;
        r.cap += m.capacity;
      }
      r.inp.push(m.input_token_price_wei);
      r.out.push(m.output_token_price_wei);
    }
  }
  const rows = [...models.values()].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0)).map((r) => {
    const n = (v) => el('td', { class: v ? 'num' : 'num zero' }, v);
    return el('tr', { 'data-model': r.id },
      el('td', {}, el('code', {}, r.id)), n(r.executors), n(r.healthy), n(r.overloaded), n(r.stale), n(r.unverified),
      el('td', {}, loadBar(r.used, r.cap)),
      el('td', { class: 'price' }, r.inp.length ? `${minMax(r.inp)} / ${minMax(r.out)}` : '–'));
  });
  $('models').tBodies[0].replaceChildren(...rows);
  $('models-count').textContent = `(${models.size})`;
  $('models-empty').hidden = models.size > 0;
  $('models').hidden = models.size === 0;
}

function loadBar(used, cap) {
  const pct = cap > 0 ? Math.min(100, Math.round((100 * used) / cap)) : 0;
  const bar = el('div', { class: used >= cap && cap > 0 ? 'bar full' : 'bar', title: `${used} of ${cap}` }, el('i'));
  bar.firstChild.style.width = `${pct}%`;
  return el('div', {}, bar, el('span', { class: 'load' }, cap > 0 ? `${used} / ${cap}` : 'no live executor'));
}

const RANK = { healthy: 0, overloaded: 1, unverified: 2, stale: 3 };

function drawExecutors() {
  const all = [...view.executors.values()].sort((a, b) =>
    (RANK[statusOf(a)] ?? 9) - (RANK[statusOf(b)] ?? 9) || a.registered_at_ms - b.registered_at_ms || (a.peer_id < b.peer_id ? -1 : 1));
  const rows = all.slice(0, MAX_ROWS).map((x) => {
    const st = statusOf(x);
    const models = x.models.map((m) =>
      el('div', { class: 'model', 'data-model': m.model_id },
        el('code', { class: m.available ? '' : 'unavailable', title: `${m.backend_type}, context ${m.max_context_length}${m.available ? '' : ', unavailable'}` }, m.model_id),
        el('div', { class: m.active + m.queued >= m.capacity ? 'bar full' : 'bar' }, barFill(m)),
        el('span', { class: 'load' }, `${m.active} + ${m.queued} / ${m.capacity}`),
        el('span', { class: 'price' }, `${m.input_token_price_wei} / ${m.output_token_price_wei}`)));
    return el('tr', { class: st, 'data-peer': x.peer_id, 'data-status': x.status, 'data-verified': String(x.verified) },
      el('td', {}, el('span', { class: 'mono', title: `${x.peer_id}\n${x.addrs.join('\n')}` }, shortPeer(x.peer_id)),
        el('span', { class: 'tag' }, x.relayed ? 'relayed' : 'direct')),
      el('td', {}, el('span', { class: `badge ${x.status}` }, x.status)),
      el('td', {}, el('span', { class: x.verified ? 'badge healthy' : 'badge unverified' }, x.verified ? 'verified' : 'unverified')),
      el('td', {}, ...models),
      timeCell(x.last_seen_ms),
      timeCell(x.registered_at_ms));
  });
  $('executors').tBodies[0].replaceChildren(...rows);
  $('executors-count').textContent = `(${all.length})`;
  $('executors-empty').hidden = all.length > 0;
  $('executors').hidden = all.length === 0;
  const more = $('executors-more');
  more.hidden = all.length <= MAX_ROWS;
  more.textContent = `${all.length - MAX_ROWS} more not drawn; the JSON API lists them all.`;
}

function barFill(m) {
  const i = el('i');
  i.style.width = `${m.capacity > 0 ? Math.min(100, Math.round((100 * (m.active + m.queued)) / m.capacity)) : 0}%`;
  return i;
}

// ---- the event stream ----

function setConn(state, text) {
  const c = $('conn');
  c.dataset.state = state;
  c.lastChild.textContent = text;
}

function applyStats(s) {
  view.stats = s;
  if (s && s.now_ms) view.skew = s.now_ms - Date.now();
}

function connect() {
  // EventSource reconnects by itself, sending the last change's version
  // as Last-Event-ID: the validator resumes after it, or sends a snapshot.
  const es = new EventSource('/api/v1/events?include_unverified=true');
  es.addEventListener('open', () => setConn('live', 'live'));
  es.addEventListener('error', () => setConn('reconnecting', 'reconnecting…'));
  es.addEventListener('snapshot', (e) => {
    const d = JSON.parse(e.data);
    view.executors.clear();
    for (const x of d.executors) view.executors.set(x.peer_id, x);
    applyStats(d.stats);
    view.version = d.version;
    schedule();
  });
  es.addEventListener('resumed', (e) => {
    view.version = JSON.parse(e.data).version;
    schedule();
  });
  es.addEventListener('change', (e) => {
    const ev = JSON.parse(e.data);
    if (ev.kind === 'removed') view.executors.delete(ev.executor.peer_id);
    else view.executors.set(ev.executor.peer_id, ev.executor);
    view.version = ev.version;
    view.lastChange = Date.now();
    schedule();
  });
  es.addEventListener('stats', (e) => {
    const d = JSON.parse(e.data);
    applyStats(d.stats);
    for (const [id, ms] of Object.entries(d.seen || {})) {
      const x = view.executors.get(id);
      if (x && ms > x.last_seen_ms) x.last_seen_ms = ms;
    }
    schedule();
  });
  es.addEventListener('reset', () => setConn('reconnecting', 'catching up…'));
}

setInterval(refreshTimes, 1000);
connect();
