// A small OpenAI-compatible backend for the fault cases: it streams the
// tokens it is given, counts the requests it holds at once (and the peak),
// notices a caller that goes away, and can hold requests or cut streams.
import http from 'node:http';
import { once } from 'node:events';
import { waitFor } from './wait.mjs';

export class FakeBackend {
  /**
   * @param {object} o
   * @param {string[]} o.models  model ids it lists and serves
   * @param {string[]} [o.tokens] the answer, one content delta each
   * @param {number} [o.delayMs] pause before each token after the first
   */
  constructor({ models, tokens = ['Hello', ',', ' world', '!'], delayMs = 0 }) {
    this.models = models;
    this.tokens = tokens;
    this.delayMs = delayMs;
    this.cutAfter = -1; // >= 0: end the stream after that many tokens, without finish_reason or [DONE]
    this.requests = []; // decoded bodies of the completion requests
    this.active = 0;
    this.peak = 0;
    this.cancelled = 0; // callers that went away before the answer ended
    this.gate = null; // a promise that held requests wait for
    this.sockets = new Set();
    this.server = http.createServer((req, res) => this.#handle(req, res));
    this.server.on('connection', (s) => {
      this.sockets.add(s);
      s.on('close', () => this.sockets.delete(s));
    });
  }

  async start() {
    this.server.listen(0, '127.0.0.1');
    await once(this.server, 'listening');
    this.url = `http://127.0.0.1:${this.server.address().port}/v1`;
    return this;
  }

  async close() {
    this.release?.();
    for (const s of this.sockets) s.destroy();
    await new Promise((resolve) => this.server.close(resolve));
  }

  /** Holds every request that arrives from now on until the returned function is called. */
  block() {
    let release;
    this.gate = new Promise((r) => (release = r));
    this.release = () => {
      this.gate = null;
      release();
    };
    return this.release;
  }

  waitActive(n, what = `${n} requests active at the fake backend`) {
    return waitFor(what, () => (this.active === n ? true : `${this.active} active`));
  }

  waitCancelled(n, timeoutMs) {
    return waitFor(`${n} requests cancelled at the fake backend`,
      () => (this.cancelled >= n ? true : `${this.cancelled} cancelled`), timeoutMs);
  }

  async #handle(req, res) {
    const url = new URL(req.url, 'http://x');
    if (req.method === 'GET' && url.pathname === '/v1/models') {
      return json(res, 200, { object: 'list', data: this.models.map((id) => ({ id, object: 'model', created: 0, owned_by: 'fake' })) });
    }
    const chat = url.pathname === '/v1/chat/completions';
    if (req.method !== 'POST' || (!chat && url.pathname !== '/v1/completions')) {
      return json(res, 404, { error: { message: `no route ${req.method} ${url.pathname}`, type: 'invalid_request_error' } });
    }
    let body;
    try {
      const parts = [];
      for await (const p of req) parts.push(p);
      body = JSON.parse(Buffer.concat(parts).toString('utf8'));
    } catch (e) {
      return json(res, 400, { error: { message: `bad JSON: ${e.message}`, type: 'invalid_request_error' } });
    }
    if (!this.models.includes(body.model)) {
      return json(res, 404, { error: { message: `model "${body.model}" not found`, type: 'invalid_request_error', code: 'model_not_found' } });
    }
    this.requests.push(body);
    this.active++;
    this.peak = Math.max(this.peak, this.active);
    let finished = false;
    // The caller going away closes the response before it ended.
    res.on('close', () => {
      this.active--;
      if (!finished) this.cancelled++;
    });
    const gone = () => res.destroyed || res.writableEnded || req.socket.destroyed;

    if (this.gate) {
      await Promise.race([this.gate, once(res, 'close')]);
      if (gone()) return;
    }
    let toks = this.tokens;
    let finish = 'stop';
    if (body.max_tokens != null && body.max_tokens < toks.length) {
      toks = toks.slice(0, body.max_tokens);
      finish = 'length';
    }
    const promptTokens = chat
      ? body.messages.map((m) => String(m.content).split(/\s+/).filter(Boolean).length).reduce((a, b) => a + b, 0)
      : String(body.prompt).split(/\s+/).filter(Boolean).length;
    const usage = { prompt_tokens: promptTokens, completion_tokens: toks.length, total_tokens: promptTokens + toks.length };
    const base = { id: 'fake-1', object: chat ? 'chat.completion.chunk' : 'text_completion', created: Math.floor(Date.now() / 1000), model: body.model };
    const choice = (text, role, fin) =>
      chat ? { index: 0, delta: { ...(role ? { role } : {}), ...(text !== null ? { content: text } : {}) }, finish_reason: fin }
        : { index: 0, text: text ?? '', finish_reason: fin };

    if (!body.stream) {
      const text = toks.join('');
      finished = true;
      return json(res, 200, chat
        ? { ...base, object: 'chat.completion', choices: [{ index: 0, message: { role: 'assistant', content: text }, finish_reason: finish }], usage }
        : { ...base, choices: [{ index: 0, text, finish_reason: finish }], usage });
    }
    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
    const send = (obj) => !gone() && res.write(`data: ${typeof obj === 'string' ? obj : JSON.stringify(obj)}\n\n`) !== undefined;
    if (chat) send({ ...base, choices: [choice('', 'assistant', null)] });
    for (let i = 0; i < toks.length; i++) {
      if (this.cutAfter >= 0 && i >= this.cutAfter) {
        finished = true;
        return res.end(); // cut: no finish_reason, no [DONE]
      }
      if (i > 0 && this.delayMs > 0) await sleep(this.delayMs);
      if (gone()) return;
      send({ ...base, choices: [choice(toks[i], null, null)] });
    }
    send({ ...base, choices: [choice(chat ? null : '', null, finish)] });
    if (body.stream_options?.include_usage) send({ ...base, choices: [], usage });
    send('[DONE]');
    finished = true;
    res.end();
  }
}

function json(res, status, obj) {
  const b = JSON.stringify(obj);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(b) });
  res.end(b);
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
