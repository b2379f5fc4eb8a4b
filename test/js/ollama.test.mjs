// The gateway over a real engine: Ollama serving the generated test model
// (scripts/ollama-test-engine.sh start prints OLLAMA_URL and OLLAMA_MODEL;
// run.sh starts it when LLOOM_OLLAMA_BIN is set). Each answer through
// lloom must be the one the engine gives when asked directly.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import OpenAI from 'openai';
import { Network } from './lib/network.mjs';

const { OLLAMA_URL, OLLAMA_MODEL } = process.env;
const skip = !(OLLAMA_URL && OLLAMA_MODEL) && 'OLLAMA_URL and OLLAMA_MODEL not set (scripts/ollama-test-engine.sh start)';

describe('a real Ollama behind the gateway', { skip }, () => {
  let net;
  let gateway;
  let lloom;
  let engine;
  // Deterministic sampling, so that the engine answers the same twice.
  const params = { model: OLLAMA_MODEL, temperature: 0, seed: 1, max_tokens: 16 };
  const messages = [{ role: 'user', content: 'Tell me about the garden.' }];

  before(async () => {
    net = new Network('ollama');
    const v = await net.validator();
    net.executor(v, { url: OLLAMA_URL, model: OLLAMA_MODEL, capacity: 2 });
    gateway = await net.gateway(v);
    await net.waitModel(gateway, OLLAMA_MODEL, 1);
    lloom = new OpenAI({ baseURL: gateway.baseURL, apiKey: 'unused', maxRetries: 0, timeout: 60_000 });
    engine = new OpenAI({ baseURL: OLLAMA_URL, apiKey: 'ollama', maxRetries: 0, timeout: 60_000 });
  });

  after(async () => {
    await net?.stop();
  });

  it('models.list lists the engine model', async () => {
    const ids = [];
    for await (const m of lloom.models.list()) ids.push(m.id);
    assert.deepEqual(ids, [OLLAMA_MODEL]);
  });

  it('chat, not streamed: the engine answer, its usage, and a receipt', async () => {
    const want = await engine.chat.completions.create({ ...params, messages });
    const { data: got, response } = await lloom.chat.completions.create({ ...params, messages }).withResponse();
    assert.ok(want.choices[0].message.content.length > 0);
    assert.equal(got.choices[0].message.content, want.choices[0].message.content);
    assert.equal(got.choices[0].finish_reason, want.choices[0].finish_reason);
    assert.equal(got.usage.prompt_tokens, want.usage.prompt_tokens);
    assert.equal(got.usage.completion_tokens, want.usage.completion_tokens);
    assert.equal(response.headers.get('x-lloom-executor'), got.lloom.executor);
    assert.equal(response.headers.get('x-lloom-receipt'), got.lloom.receipt);
  });

  it('chat, streamed with usage: the engine answer chunk by chunk', async () => {
    const want = await engine.chat.completions.create({ ...params, messages });
    const stream = await lloom.chat.completions.create({ ...params, messages, stream: true, stream_options: { include_usage: true } });
    const chunks = [];
    for await (const c of stream) chunks.push(c);
    assert.equal(chunks[0].choices[0].delta.role, 'assistant');
    // Content, then the finish reason, then usage and lloom. (Text that the
    // engine produces while the executor writes travels in one chunk, so
    // a fast engine's short answer may come as a single content chunk;
    // incremental delivery is tested with a paced backend in Go.)
    assert.ok(chunks.length >= 3, `${chunks.length} chunks: want content, finish and usage chunks`);
    assert.ok(chunks.at(-2).choices[0].finish_reason, 'the chunk before the last carries the finish reason');
    const text = chunks.map((c) => c.choices[0]?.delta?.content ?? '').join('');
    assert.equal(text, want.choices[0].message.content);
    const last = chunks.at(-1);
    assert.equal(last.usage.completion_tokens, want.usage.completion_tokens);
    assert.ok(last.lloom.receipt);
  });

  it('completion, not streamed and streamed: the engine answer', async () => {
    const prompt = 'Once upon a time';
    const want = await engine.completions.create({ ...params, prompt });
    const got = await lloom.completions.create({ ...params, prompt });
    assert.equal(got.choices[0].text, want.choices[0].text);
    assert.equal(got.choices[0].finish_reason, want.choices[0].finish_reason);
    const stream = await lloom.completions.create({ ...params, prompt, stream: true });
    let text = '';
    for await (const c of stream) text += c.choices[0]?.text ?? '';
    assert.equal(text, want.choices[0].text);
  });

  it('max_tokens reaches the engine: a short answer cut for length', async () => {
    const got = await lloom.chat.completions.create({ ...params, messages, max_tokens: 3 });
    assert.equal(got.choices[0].finish_reason, 'length');
    assert.equal(got.usage.completion_tokens, 3);
  });
});
