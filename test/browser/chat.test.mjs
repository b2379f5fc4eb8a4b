// The gateway's chat page in a real browser, over a real network
// (validator, an executor with a fake backend that streams slowly, the
// gateway): pick the model, type a prompt, see the answer stream in, then
// the executor that wrote it and its receipt.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { Network } from '../js/lib/network.mjs';
import { FakeBackend } from '../js/lib/fake.mjs';
import { launch, waitInPage, SCREENSHOT_DIR } from './lib/browser.mjs';

const MODEL = 'llama3.2:1b';
const TOKENS = ['Hello', ',', ' I', ' am', ' a', ' model', ' on', ' the', ' lloom', ' network', '.'];

test('the chat page streams an answer and shows its executor and receipt', async (t) => {
  const fake = await new FakeBackend({ models: [MODEL], tokens: TOKENS, delayMs: 120 }).start();
  t.after(() => fake.close());
  const net = new Network('chat');
  const v = await net.validator();
  const ex = net.executor(v, { url: fake.url, model: MODEL });
  const g = await net.gateway(v);
  await net.waitModel(g, MODEL, 1);
  const executorID = net.logOf(ex).match(/peer=(12D3KooW\w+)/)?.[1];
  assert.ok(executorID, 'the executor logged its peer id');
  const base = g.baseURL.replace(/\/v1$/, '');

  const b = await launch({ width: 1100, height: 760 });
  t.after(() => b.close());
  await b.page.goto(`${base}/`, { waitUntil: 'domcontentloaded' });
  await waitInPage(b.page, 'the model picker lists the model', (m) =>
    [...document.querySelectorAll('#model option')].some((o) => o.value === m) || document.querySelector('#model').textContent, MODEL);

  // Record every distinct text the answer shows while it streams.
  await b.page.evaluate(() => {
    window.lloomSeen = [];
    new MutationObserver(() => {
      const a = document.querySelector('[data-role="answer"] .text');
      if (a && window.lloomSeen.at(-1) !== a.textContent) window.lloomSeen.push(a.textContent);
    }).observe(document.getElementById('log'), { subtree: true, childList: true, characterData: true });
  });
  await b.page.type('#prompt', 'Who are you?');
  await b.page.click('#send');

  const want = TOKENS.join('');
  await waitInPage(b.page, 'the whole answer, with its receipt', (w) => {
    const a = document.querySelector('[data-role="answer"]');
    return (a?.dataset.done === 'true' && a.querySelector('.text').textContent === w) ||
      `${a?.querySelector('.text')?.textContent} ${a?.querySelector('.error')?.textContent ?? ''}`;
  }, want);
  const seen = await b.page.evaluate(() => window.lloomSeen);
  const partial = seen.filter((s) => s.length > 0 && s.length < want.length && want.startsWith(s));
  assert.ok(partial.length >= 3, `the answer appeared piece by piece (saw ${JSON.stringify(seen)})`);

  const shown = await b.page.$eval('[data-field="executor"]', (e) => e.dataset.peer);
  assert.equal(shown, executorID, 'the page names the executor that answered');
  const receipt = await b.page.$eval('[data-field="receipt"]', (e) => e.dataset.receipt);
  assert.ok(Buffer.from(receipt, 'base64').length > 100, 'the page carries the signed receipt');
  const fee = await b.page.$eval('[data-field="fee"]', (e) => e.textContent);
  assert.match(fee, new RegExp(`\\d+ \\+ ${TOKENS.length} tokens, fee \\d+ wei, stop`), 'the receipt is decoded: tokens, fee, finish reason');
  assert.equal(fake.requests.at(-1).messages.at(-1).content, 'Who are you?', 'the backend got the prompt');

  // A second turn carries the conversation.
  await b.page.type('#prompt', 'And then?');
  await b.page.keyboard.press('Enter');
  await waitInPage(b.page, 'the second answer', () => document.querySelectorAll('[data-role="answer"][data-done="true"]').length === 2 || 'not yet');
  assert.equal(fake.requests.at(-1).messages.length, 3, 'the second request carries the first question and answer');

  fs.mkdirSync(SCREENSHOT_DIR, { recursive: true });
  const shot = path.join(SCREENSHOT_DIR, 'chat.png');
  await b.page.screenshot({ path: shot });
  t.diagnostic(`screenshot: ${shot}`);

  // Unknown API paths stay JSON 404s.
  const r = await fetch(`${base}/v1/nope`);
  assert.equal(r.status, 404);
  assert.equal((await r.json()).error.code, 'not_found');

  assert.deepEqual(b.offLoopback, [], 'the page requested nothing beyond loopback');
  assert.deepEqual(b.errors, [], 'no console error or exception in the page');
  await b.close();
  await net.stop();
});
