// lloom's chat page: the gateway's own OpenAI-compatible API, streamed.
// Every answer shows the executor that wrote it and its signed receipt
// (which the gateway verified), decoded here to show the tokens and fee.
// No framework; the DOM is built with textContent only.
'use strict';

const $ = (id) => document.getElementById(id);
const KEY_STORE = 'lloom-gateway-key';

const chat = {
  messages: [], // the conversation so far: {role, content}
  abort: null, // AbortController of the answer streaming now
};

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

function headers() {
  const h = { 'Content-Type': 'application/json' };
  const key = sessionStorage.getItem(KEY_STORE);
  if (key) h.Authorization = `Bearer ${key}`;
  return h;
}

function status(text) {
  $('status').textContent = text || '';
}

function shortPeer(id) {
  return id && id.length > 20 ? `${id.slice(0, 10)}…${id.slice(-6)}` : id || '–';
}

// ---- models ----

async function loadModels() {
  let resp;
  try {
    resp = await fetch('/v1/models', { headers: headers() });
  } catch (e) {
    status(`The gateway did not answer: ${e.message}`);
    return;
  }
  if (resp.status === 401) {
    $('key-form').hidden = false;
    status('This gateway needs its API key.');
    return;
  }
  const body = await resp.json().catch(() => null);
  if (!resp.ok) {
    status(body?.error?.message || `GET /v1/models: HTTP ${resp.status}`);
    return;
  }
  const sel = $('model');
  const keep = sel.value;
  const models = body.data || [];
  if (models.length === 0) {
    sel.replaceChildren(el('option', { value: '' }, 'no model served yet'));
    sel.disabled = true;
    $('model-info').textContent = '';
    return;
  }
  sel.replaceChildren(...models.map((m) => el('option', { value: m.id, 'data-executors': String(m.lloom?.executors ?? 0) }, m.id)));
  sel.disabled = false;
  if (models.some((m) => m.id === keep)) sel.value = keep;
  showModelInfo();
  if ($('status').textContent.startsWith('This gateway needs') || $('status').textContent.startsWith('The gateway did not')) status('');
}

function showModelInfo() {
  const opt = $('model').selectedOptions[0];
  const n = Number(opt?.dataset.executors || 0);
  $('model-info').textContent = opt && opt.value ? `${n} live executor${n === 1 ? '' : 's'}` : '';
}

// ---- receipts: a libp2p signed envelope holding a lloom Receipt ----

function readVarint(b, pos) {
  let x = 0n;
  let shift = 0n;
  for (;;) {
    if (pos >= b.length) throw new Error('truncated varint');
    const c = b[pos++];
    x |= BigInt(c & 0x7f) << shift;
    if (c < 0x80) return [x, pos];
    shift += 7n;
  }
}

// fields decodes one protobuf message into {number: value}: numbers as
// BigInt, length-delimited fields as bytes (the last of each number wins).
function fields(b) {
  const out = {};
  let pos = 0;
  while (pos < b.length) {
    let key;
    [key, pos] = readVarint(b, pos);
    const no = Number(key >> 3n);
    const wire = Number(key & 7n);
    if (wire === 0) {
      [out[no], pos] = readVarint(b, pos);
    } else if (wire === 2) {
      let n;
      [n, pos] = readVarint(b, pos);
      out[no] = b.subarray(pos, pos + Number(n));
      pos += Number(n);
    } else if (wire === 1) {
      pos += 8;
    } else if (wire === 5) {
      pos += 4;
    } else {
      throw new Error(`wire type ${wire}`);
    }
  }
  return out;
}

function decodeReceipt(b64) {
  const raw = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
  const env = fields(raw);
  const r = fields(env[3] || new Uint8Array());
  const text = (v) => (v ? new TextDecoder().decode(v) : '');
  return {
    bytes: raw.length,
    model: text(r[4]),
    promptTokens: Number(r[5] || 0n),
    completionTokens: Number(r[6] || 0n),
    feeWei: text(r[10]) || '0',
    startedMs: Number(r[11] || 0n),
    finishedMs: Number(r[12] || 0n),
    finishReason: text(r[14]),
  };
}

// ---- the conversation ----

function addMessage(role, text) {
  $('hello')?.remove();
  const m = el('div', { class: `msg ${role}`, 'data-role': role === 'user' ? 'prompt' : 'answer' },
    el('div', { class: 'who' }, role === 'user' ? 'You' : 'Assistant'),
    el('div', { class: 'text' }, text));
  $('log').append(m);
  m.scrollIntoView({ block: 'end' });
  return m;
}

function showError(m, text) {
  m.append(el('div', { class: 'error', 'data-field': 'error' }, text));
}

function showMeta(m, lloom, usage) {
  const meta = el('div', { class: 'meta' });
  const attempts = lloom.attempts?.length || 0;
  meta.append(el('div', {},
    'Executor ', el('b', { class: 'mono', title: lloom.executor, 'data-field': 'executor', 'data-peer': lloom.executor }, shortPeer(lloom.executor)),
    attempts > 1 ? ` · after ${attempts} attempts` : ''));
  if (lloom.receipt) {
    let line = 'Receipt signed by the executor, checked by the gateway';
    try {
      const r = decodeReceipt(lloom.receipt);
      line = `Receipt: ${r.promptTokens} + ${r.completionTokens} tokens, fee ${r.feeWei} wei, ${r.finishReason || 'done'} in ${Math.max(0, r.finishedMs - r.startedMs)} ms — signed by the executor, checked by the gateway`;
      meta.dataset.fee = r.feeWei;
    } catch (e) {
      line += ` (not decoded here: ${e.message})`;
    }
    meta.append(el('div', { class: 'ok', 'data-field': 'fee' }, line));
    meta.append(el('details', {},
      el('summary', {}, 'signed receipt (base64)'),
      el('code', { 'data-field': 'receipt', 'data-receipt': lloom.receipt }, lloom.receipt)));
  } else {
    meta.append(el('div', {}, 'No receipt came with this answer.'));
  }
  if (usage) meta.dataset.tokens = String(usage.total_tokens);
  m.append(meta);
}

async function send(text) {
  const model = $('model').value;
  if (!model) {
    status('Pick a model first.');
    return;
  }
  chat.messages.push({ role: 'user', content: text });
  addMessage('user', text);
  const m = addMessage('assistant', '');
  m.classList.add('streaming');
  const out = m.querySelector('.text');
  setBusy(true);
  status(`Asking the network for ${model}…`);
  chat.abort = new AbortController();
  let answer = '';
  let lloom = null;
  let usage = null;
  let done = false;
  try {
    const resp = await fetch('/v1/chat/completions', {
      method: 'POST',
      headers: headers(),
      body: JSON.stringify({ model, messages: chat.messages, stream: true, stream_options: { include_usage: true } }),
      signal: chat.abort.signal,
    });
    if (!resp.ok) {
      const body = await resp.json().catch(() => null);
      if (resp.status === 401) $('key-form').hidden = false;
      throw new Error(body?.error?.message || `HTTP ${resp.status}`);
    }
    status(`Streaming from ${shortPeer(resp.headers.get('X-Lloom-Executor'))}…`);
    const reader = resp.body.getReader();
    const dec = new TextDecoder();
    let buf = '';
    for (;;) {
      const { value, done: end } = await reader.read();
      if (end) break;
      buf += dec.decode(value, { stream: true });
      let i;
      while ((i = buf.indexOf('\n\n')) >= 0) {
        const block = buf.slice(0, i);
        buf = buf.slice(i + 2);
        const data = block.split('\n').filter((l) => l.startsWith('data:')).map((l) => l.slice(5).trimStart()).join('\n');
        if (!data) continue;
        if (data === '[DONE]') {
          done = true;
          continue;
        }
        const chunk = JSON.parse(data);
        if (chunk.error) throw new Error(chunk.error.message || 'the answer failed');
        const delta = chunk.choices?.[0]?.delta?.content;
        if (delta) {
          answer += delta;
          out.textContent = answer;
          m.scrollIntoView({ block: 'end' });
        }
        if (chunk.lloom) lloom = chunk.lloom;
        if (chunk.usage) usage = chunk.usage;
      }
    }
    if (!done) throw new Error('the answer was cut before its end');
    chat.messages.push({ role: 'assistant', content: answer });
    if (lloom) showMeta(m, lloom, usage);
    m.dataset.done = 'true';
    status('');
  } catch (e) {
    chat.messages.pop(); // the question goes again with the next one
    if (e.name === 'AbortError') {
      showError(m, 'Stopped.');
    } else {
      showError(m, e.message);
    }
    status('');
  } finally {
    m.classList.remove('streaming');
    chat.abort = null;
    setBusy(false);
  }
}

function setBusy(busy) {
  $('send').disabled = busy;
  $('stop').hidden = !busy;
}

$('composer').addEventListener('submit', (e) => {
  e.preventDefault();
  const text = $('prompt').value.trim();
  if (!text || chat.abort) return;
  $('prompt').value = '';
  send(text);
});
$('prompt').addEventListener('keydown', (e) => {
  if (e.key === 'Enter' && !e.shiftKey) {
    e.preventDefault();
    $('composer').requestSubmit();
  }
});
$('stop').addEventListener('click', () => chat.abort?.abort());
$('clear').addEventListener('click', () => {
  chat.abort?.abort();
  chat.messages = [];
  $('log').replaceChildren();
  status('');
});
$('model').addEventListener('change', showModelInfo);
$('key-form').addEventListener('submit', (e) => {
  e.preventDefault();
  sessionStorage.setItem(KEY_STORE, $('key').value.trim());
  $('key-form').hidden = true;
  loadModels();
});

loadModels();
setInterval(loadModels, 10_000);
