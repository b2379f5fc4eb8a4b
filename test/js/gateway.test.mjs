// `lloom gateway` driven by the official openai SDK over a real lloom
// network (the built binary: a validator, executors, gateways) whose
// executors are backed by fake OpenAI-compatible servers written here, so
// that every fault can be made on purpose.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import OpenAI, { APIError, APIUserAbortError, AuthenticationError, NotFoundError, RateLimitError } from 'openai';
import { FakeBackend } from './lib/fake.mjs';
import { Network } from './lib/network.mjs';

const LOAD_CAPACITY = 40;

let net;
const fakes = {};
const gw = {};

before(async () => {
  net = new Network('gateway');
  fakes.main = await new FakeBackend({ models: ['test-model'] }).start();
  fakes.small = await new FakeBackend({ models: ['small-model'] }).start();
  fakes.slow = await new FakeBackend({ models: ['slow-model'], tokens: Array(400).fill('tok '), delayMs: 25 }).start();
  fakes.cut = await new FakeBackend({ models: ['cut-model'] }).start();
  fakes.cut.cutAfter = 2;
  fakes.load = await Promise.all([1, 2, 3].map(() =>
    new FakeBackend({ models: ['load-model'], tokens: Array.from({ length: 20 }, (_, i) => `t${i} `), delayMs: 10 }).start()));

  const v = await net.validator();
  net.executor(v, { url: fakes.main.url, model: 'test-model' });
  net.executor(v, { url: fakes.small.url, model: 'small-model', capacity: 1, queue: 0 });
  net.executor(v, { url: fakes.slow.url, model: 'slow-model' });
  net.executor(v, { url: fakes.cut.url, model: 'cut-model' });
  for (const f of fakes.load) net.executor(v, { url: f.url, model: 'load-model', capacity: LOAD_CAPACITY });
  [gw.open, gw.keyed, gw.narrow] = await Promise.all([
    net.gateway(v),
    net.gateway(v, { apiKey: 'sk-lloom-js' }),
    net.gateway(v, { maxConcurrent: 1 }),
  ]);
  for (const [model, n] of [['test-model', 1], ['small-model', 1], ['slow-model', 1], ['cut-model', 1], ['load-model', 3]]) {
    await net.waitModel(gw.open, model, n);
  }
  await net.waitModel(gw.narrow, 'test-model', 1);
  await net.waitModel(gw.keyed, 'test-model', 1, 'sk-lloom-js');
});

after(async () => {
  try {
    await net?.stop();
  } finally {
    await Promise.all([fakes.main, fakes.small, fakes.slow, fakes.cut, ...(fakes.load ?? [])].filter(Boolean).map((f) => f.close()));
  }
});

// No retries: each test sees the gateway's own answer.
const sdk = (g, apiKey = 'unused') => new OpenAI({ baseURL: g.baseURL, apiKey, maxRetries: 0, timeout: 30_000 });

const chat = (model, extra = {}) => ({ model, messages: [{ role: 'user', content: 'say hello to me' }], ...extra });

test('models.list lists the served models, owned by lloom', async () => {
  const ids = [];
  for await (const m of sdk(gw.open).models.list()) {
    assert.equal(m.object, 'model');
    assert.equal(m.owned_by, 'lloom');
    ids.push(m.id);
  }
  assert.deepEqual(ids.sort(), ['cut-model', 'load-model', 'slow-model', 'small-model', 'test-model']);
  const m = await sdk(gw.open).models.retrieve('load-model');
  assert.equal(m.id, 'load-model');
  assert.equal(m.lloom.executors, 3);
});

test('chat, not streamed: the backend text, usage, executor and receipt', async () => {
  const { data, response } = await sdk(gw.open).chat.completions.create(chat('test-model')).withResponse();
  assert.equal(data.object, 'chat.completion');
  assert.equal(data.choices[0].message.role, 'assistant');
  assert.equal(data.choices[0].message.content, 'Hello, world!');
  assert.equal(data.choices[0].finish_reason, 'stop');
  assert.deepEqual(data.usage, { prompt_tokens: 4, completion_tokens: 4, total_tokens: 8 });
  assert.match(data.lloom.executor, /^12D3KooW/);
  assert.equal(response.headers.get('x-lloom-executor'), data.lloom.executor);
  assert.equal(response.headers.get('x-lloom-receipt'), data.lloom.receipt);
  assert.ok(Buffer.from(data.lloom.receipt, 'base64').length > 64, 'receipt: base64 envelope bytes');
  assert.equal(data.lloom.attempts.length, 1);
});

test('chat, streamed with usage: chunks, finish reason, usage and lloom in the last chunk', async () => {
  const fake = fakes.main;
  const before = fake.requests.length;
  const { data: stream, response } = await sdk(gw.open).chat.completions
    .create(chat('test-model', { stream: true, stream_options: { include_usage: true } })).withResponse();
  assert.match(response.headers.get('content-type'), /^text\/event-stream/);
  assert.match(response.headers.get('x-lloom-executor'), /^12D3KooW/);
  assert.equal(response.headers.get('x-lloom-receipt'), null, 'a stream carries its receipt in the last chunk');
  const chunks = [];
  for await (const c of stream) chunks.push(c);
  assert.ok(chunks.every((c) => c.object === 'chat.completion.chunk' && c.model === 'test-model'));
  assert.equal(chunks[0].choices[0].delta.role, 'assistant');
  const text = chunks.flatMap((c) => c.choices.map((ch) => ch.delta.content ?? '')).join('');
  assert.equal(text, 'Hello, world!');
  assert.equal(chunks.flatMap((c) => c.choices).findLast((ch) => ch.finish_reason)?.finish_reason, 'stop');
  const last = chunks.at(-1);
  assert.deepEqual(last.choices, []);
  assert.deepEqual(last.usage, { prompt_tokens: 4, completion_tokens: 4, total_tokens: 8 });
  assert.equal(last.lloom.executor, response.headers.get('x-lloom-executor'));
  assert.ok(last.lloom.receipt.length > 0);
  // The backend was asked once, streamed, with the user's words.
  assert.equal(fake.requests.length, before + 1);
  assert.equal(fake.requests.at(-1).messages[0].content, 'say hello to me');
});

test('chat, streamed without include_usage: no usage chunk', async () => {
  const stream = await sdk(gw.open).chat.completions.create(chat('test-model', { stream: true }));
  let text = '';
  for await (const c of stream) {
    assert.equal(c.usage ?? null, null, 'usage without stream_options.include_usage');
    text += c.choices[0]?.delta?.content ?? '';
  }
  assert.equal(text, 'Hello, world!');
});

test('completion, not streamed and streamed with usage', async () => {
  const client = sdk(gw.open);
  const one = await client.completions.create({ model: 'test-model', prompt: 'one two three', max_tokens: 3 });
  assert.equal(one.object, 'text_completion');
  assert.equal(one.choices[0].text, 'Hello, world');
  assert.equal(one.choices[0].finish_reason, 'length');
  assert.deepEqual(one.usage, { prompt_tokens: 3, completion_tokens: 3, total_tokens: 6 });
  assert.ok(one.lloom.receipt);

  const stream = await client.completions.create({ model: 'test-model', prompt: 'one two three', stream: true, stream_options: { include_usage: true } });
  const chunks = [];
  for await (const c of stream) chunks.push(c);
  assert.ok(chunks.every((c) => c.object === 'text_completion'));
  assert.equal(chunks.map((c) => c.choices[0]?.text ?? '').join(''), 'Hello, world!');
  assert.equal(chunks.at(-1).usage.completion_tokens, 4);
  assert.ok(chunks.at(-1).lloom.receipt);
});

test('an unknown model is NotFoundError (404, model_not_found)', async () => {
  await assert.rejects(sdk(gw.open).chat.completions.create(chat('no-such-model')), (e) => {
    assert.ok(e instanceof NotFoundError, `${e.constructor.name}: ${e.message}`);
    assert.equal(e.status, 404);
    assert.equal(e.code, 'model_not_found');
    return true;
  });
});

test('a wrong API key is AuthenticationError; the right one works', async () => {
  await assert.rejects(sdk(gw.keyed, 'sk-wrong').chat.completions.create(chat('test-model')), (e) => {
    assert.ok(e instanceof AuthenticationError, `${e.constructor.name}: ${e.message}`);
    assert.equal(e.status, 401);
    assert.equal(e.code, 'invalid_api_key');
    return true;
  });
  await assert.rejects(sdk(gw.keyed, 'sk-wrong').models.list(), AuthenticationError);
  // The SDK refuses to send no key at all; a plain request without one:
  const r = await fetch(`${gw.keyed.baseURL}/models`);
  assert.equal(r.status, 401);
  assert.equal((await r.json()).error.code, 'invalid_api_key');
  const ok = await sdk(gw.keyed, 'sk-lloom-js').chat.completions.create(chat('test-model'));
  assert.equal(ok.choices[0].message.content, 'Hello, world!');
});

test('past --max-concurrent 1 the gateway answers RateLimitError (429)', async () => {
  const release = fakes.main.block();
  try {
    const held = sdk(gw.narrow).chat.completions.create(chat('test-model'));
    await fakes.main.waitActive(1);
    await assert.rejects(sdk(gw.narrow).chat.completions.create(chat('test-model', { stream: true })), (e) => {
      assert.ok(e instanceof RateLimitError, `${e.constructor.name}: ${e.message}`);
      assert.equal(e.status, 429);
      assert.ok(e.headers.get('retry-after'));
      return true;
    });
    release();
    assert.equal((await held).choices[0].message.content, 'Hello, world!');
  } finally {
    release();
  }
});

test('an executor at capacity (1, no queue) gives APIError 503 with Retry-After', async () => {
  const release = fakes.small.block();
  try {
    const held = sdk(gw.open).chat.completions.create(chat('small-model'));
    await fakes.small.waitActive(1);
    await assert.rejects(sdk(gw.open).chat.completions.create(chat('small-model')), (e) => {
      assert.ok(e instanceof APIError, `${e.constructor.name}: ${e.message}`);
      assert.equal(e.status, 503);
      assert.ok(Number(e.headers.get('retry-after')) >= 1, `Retry-After ${e.headers.get('retry-after')}`);
      return true;
    });
    release();
    assert.equal((await held).choices[0].message.content, 'Hello, world!');
  } finally {
    release();
  }
});

test('a stream cut after its first tokens throws APIError, never ends as if complete', async () => {
  const stream = await sdk(gw.open).chat.completions.create(chat('cut-model', { stream: true }));
  let text = '';
  await assert.rejects(async () => {
    for await (const c of stream) text += c.choices[0]?.delta?.content ?? '';
  }, (e) => {
    assert.ok(e instanceof APIError, `${e.constructor.name}: ${e.message}`);
    assert.match(e.message, /cut/);
    return true;
  });
  assert.equal(text, 'Hello,');
});

test('aborting a stream (AbortController) closes the request at the backend', async (t) => {
  const fake = fakes.slow;
  const controller = new AbortController();
  const stream = await sdk(gw.open).chat.completions.create(chat('slow-model', { stream: true }), { signal: controller.signal });
  let text = '';
  let aborted = 0;
  // openai 7 ends the iteration quietly when its own signal aborts it
  // (older versions threw APIUserAbortError); either way it stops early.
  try {
    for await (const c of stream) {
      text += c.choices[0]?.delta?.content ?? '';
      if (text.length > 0 && !aborted) {
        aborted = Date.now();
        controller.abort();
      }
    }
  } catch (e) {
    assert.ok(e instanceof APIUserAbortError, `${e.constructor.name}: ${e.message}`);
  }
  assert.ok(aborted > 0, 'no text arrived before the abort');
  assert.ok(text.length < 400 * 'tok '.length, 'the stream went on to its end after the abort');
  await fake.waitCancelled(1, 3_000);
  assert.equal(fake.active, 0);
  t.diagnostic(`abort reached the backend after ${Date.now() - aborted} ms (the answer had ${400 * 25} ms to go)`);
});

test('100 concurrent streams through one gateway to three executors all complete, each backend within its capacity', async (t) => {
  const client = sdk(gw.open);
  const want = Array.from({ length: 20 }, (_, i) => `t${i} `).join('');
  const start = Date.now();
  const texts = await Promise.all(Array.from({ length: 100 }, async (_, i) => {
    const stream = await client.chat.completions.create({ model: 'load-model', stream: true, messages: [{ role: 'user', content: `request ${i}` }] });
    let text = '';
    let lloom = null;
    for await (const c of stream) {
      text += c.choices[0]?.delta?.content ?? '';
      lloom = c.lloom ?? lloom;
    }
    assert.ok(lloom?.receipt, `stream ${i}: no receipt in its last chunk`);
    return text;
  }));
  const took = Date.now() - start;
  assert.equal(texts.filter((t) => t === want).length, 100, 'every stream has the whole answer');
  const per = fakes.load.map((f) => f.requests.length);
  const peaks = fakes.load.map((f) => f.peak);
  t.diagnostic(`100 streams in ${took} ms; requests per backend ${per.join('/')}, peak concurrency ${peaks.join('/')} (capacity ${LOAD_CAPACITY})`);
  assert.equal(per.reduce((a, b) => a + b, 0), 100, 'each stream reached one backend once');
  for (const p of peaks) assert.ok(p <= LOAD_CAPACITY, `peak ${p} above capacity ${LOAD_CAPACITY}`);
});
