// The validator's dashboard in a real browser: a network of a validator
// (with --http-listen) and three executors; the page shows them, then one
// is killed and the page shows it stale, updated from the event stream
// without reloading. Saves the screenshot that docs/OPERATIONS.md shows.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { Network, freePort } from '../js/lib/network.mjs';
import { waitFor } from '../js/lib/wait.mjs';
import { launch, waitInPage, SCREENSHOT_DIR } from './lib/browser.mjs';

// One executor's models, as a --config file: [id, capacity, input price,
// output price, load "ACTIVE/QUEUED"].
function executorConfig(dir, name, models) {
  const file = path.join(dir, `${name}.toml`);
  const parts = [];
  const load = [];
  for (const [id, capacity, inPrice, outPrice, l] of models) {
    parts.push(`[[models]]\nid = "${id}"\nbackend = "ollama"\nmax_context_length = 8192\nfeatures = ["chat", "completion"]\ncapacity = ${capacity}\n` +
      `[models.pricing]\ninput_token_price_wei = "${inPrice}"\noutput_token_price_wei = "${outPrice}"\n`);
    load.push(`"${id}" = "${l}"`);
  }
  fs.writeFileSync(file, `${parts.join('\n')}\n[debug.load]\n${load.join('\n')}\n`);
  return file;
}

function peerOf(net, proc) {
  const m = net.logOf(proc).match(/peer=(12D3KooW\w+)/);
  return m ? m[1] : null;
}

test('the dashboard shows the executors live, and one turning stale when it is killed', async (t) => {
  const net = new Network('dashboard');
  const port = await freePort();
  const v = await net.validator({ args: ['--http-listen', `127.0.0.1:${port}`, '--stale-after', '3s', '--remove-after', '10m'] });
  const base = `http://127.0.0.1:${port}`;
  const execs = [
    net.executor(v, { args: ['--config', executorConfig(net.dir, 'a', [['llama3.2:3b', 4, '1000', '2000', '1/0'], ['qwen2.5-coder:7b', 2, '5000', '15000', '0/0']])] }),
    net.executor(v, { args: ['--config', executorConfig(net.dir, 'b', [['llama3.2:3b', 2, '800', '1600', '2/1']])] }),
    net.executor(v, { args: ['--config', executorConfig(net.dir, 'c', [['mistral:7b', 4, '1200', '2400', '1/0'], ['llama3.2:3b', 4, '1000', '2000', '0/0']])] }),
  ];
  const b = await launch();
  t.after(async () => {
    await b.close();
  });
  let ids;
  await waitFor('every executor logs its peer id', () => {
    ids = execs.map((p) => peerOf(net, p));
    return ids.every(Boolean) || `ids ${ids}`;
  });
  const victim = ids[2];

  await b.page.goto(`${base}/`, { waitUntil: 'domcontentloaded' });
  await waitInPage(b.page, 'the page lists the three executors verified and live', (want) => {
    const rows = want.map((id) => document.querySelector(`tr[data-peer="${id}"]`));
    const got = rows.map((r) => r && `${r.dataset.status}/${r.dataset.verified}`);
    return got.every((s) => s === 'healthy/true' || s === 'overloaded/true') || got.join(', ');
  }, ids);
  // The overloaded one (2 + 1 of 2) says so; the models table counts by status.
  await waitInPage(b.page, 'executor b is shown overloaded', (id) =>
    document.querySelector(`tr[data-peer="${id}"]`)?.dataset.status === 'overloaded' || 'not yet', ids[1]);
  await waitInPage(b.page, 'the models table counts llama3.2:3b as 3 executors, 2 healthy, 1 overloaded', () => {
    const r = document.querySelector('#models tbody tr');
    const got = r ? [...r.cells].slice(1, 5).map((c) => c.textContent).join(',') : '';
    return got === '3,2,1,0' || got;
  });
  const models = await b.page.$$eval('#models tbody tr', (rows) => rows.map((r) => [...r.cells].map((c) => c.textContent)));
  assert.deepEqual(models.map((r) => r[0]), ['llama3.2:3b', 'mistral:7b', 'qwen2.5-coder:7b'], 'the models table lists every model');
  assert.deepEqual(models[0].slice(1, 5), ['3', '2', '1', '0'], 'llama3.2:3b: 3 executors, 2 healthy, 1 overloaded, 0 stale');
  // Its load (1 active of 4) reaches the validator with a heartbeat, maybe
  // after the page first drew the row: wait for the live update.
  await waitInPage(b.page, "executor a's row shows the model's load, 1 + 0 / 4", (id) =>
    /1 \+ 0 \/ 4/.test(document.querySelector(`tr[data-peer="${id}"]`)?.textContent ?? '') || 'not yet', ids[0]);
  const cells = await b.page.$eval(`tr[data-peer="${ids[0]}"]`, (r) => r.textContent);
  assert.match(cells, /1000 \/ 2000/, 'the executor row shows the model\'s price');
  assert.match(cells, /s ago/, 'the executor row shows when it was last seen');
  assert.equal(await b.page.$eval('#cards [data-key="executors"] dd', (e) => e.textContent), '3', 'the validator\'s own figures count 3 executors');
  assert.equal(await b.page.$eval('#conn', (e) => e.dataset.state), 'live');

  // No reload from here on: a marker in the page must survive.
  await b.page.evaluate(() => { window.lloomNoReload = true; });
  execs[2].child.kill('SIGKILL');
  await execs[2].exited;
  await waitInPage(b.page, 'the killed executor turns stale on the page', (id) =>
    document.querySelector(`tr[data-peer="${id}"]`)?.dataset.status === 'stale' || document.querySelector(`tr[data-peer="${id}"]`)?.dataset.status, victim, 20_000);
  assert.equal(await b.page.evaluate(() => window.lloomNoReload), true, 'the page updated itself, without reloading');
  const mistral = await b.page.$eval('#models tr[data-model="mistral:7b"]', (r) => [...r.cells].map((c) => c.textContent));
  assert.deepEqual(mistral.slice(1, 5), ['1', '0', '0', '1'], 'mistral:7b: its only executor is counted stale');
  for (const id of ids.slice(0, 2)) {
    assert.notEqual(await b.page.$eval(`tr[data-peer="${id}"]`, (r) => r.dataset.status), 'stale', 'the others stay live');
  }

  // The stats event refreshes the figures: heartbeats keep arriving.
  const hb = Number(await b.page.$eval('#cards [data-key="heartbeats_accepted"] dd', (e) => e.textContent.replace(/,/g, '')));
  await waitInPage(b.page, 'the heartbeat count moves on', (n) =>
    Number(document.querySelector('#cards [data-key="heartbeats_accepted"] dd').textContent.replace(/,/g, '')) > n || 'not yet', hb);

  fs.mkdirSync(SCREENSHOT_DIR, { recursive: true });
  const shot = path.join(SCREENSHOT_DIR, 'dashboard.png');
  await b.page.screenshot({ path: shot, fullPage: true });
  t.diagnostic(`screenshot: ${shot}`);

  assert.deepEqual(b.offLoopback, [], 'the page requested nothing beyond loopback');
  assert.deepEqual(b.errors, [], 'no console error or exception in the page');
  await b.close();
  await net.stop();
});
