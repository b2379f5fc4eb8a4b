// A real lloom network for the tests: the built binary's validator,
// executors and gateways as child processes on loopback, each in a
// directory of its own, all stopped (and checked for crashes) at the end.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { waitFor } from './wait.mjs';

/** The lloom binary: $LLOOM_BIN, else the repository's ./lloom (make build). */
export const LLOOM_BIN = process.env.LLOOM_BIN
  ? path.resolve(process.env.LLOOM_BIN)
  : fileURLToPath(new URL('../../../lloom', import.meta.url));

// Every process still running, killed if this test process exits any
// other way than through Network.stop.
const live = new Set();
process.on('exit', () => {
  for (const p of live) p.kill('SIGKILL');
});
for (const sig of ['SIGINT', 'SIGTERM']) {
  process.once(sig, () => {
    for (const p of live) p.kill('SIGKILL');
    process.exit(128 + os.constants.signals[sig]);
  });
}

/** A free TCP port on 127.0.0.1 (free when asked; the caller retries if it is taken by then). */
export function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

// The environment of a lloom process: ours without what changes lloom's
// behaviour, a home of its own, no TCP port reuse.
function environ(home) {
  const env = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (k.startsWith('LLOOM_') || ['VALIDATOR_ADDRESS', 'LOG_LEVEL', 'LOG_FORMAT', 'HOME'].includes(k)) continue;
    env[k] = v;
  }
  return { ...env, HOME: home, LLOOM_HOME: home, LIBP2P_TCP_REUSEPORT: 'false' };
}

export class Network {
  constructor(name) {
    if (!fs.existsSync(LLOOM_BIN)) {
      throw new Error(`lloom binary ${LLOOM_BIN} not found: run make build, or set LLOOM_BIN`);
    }
    this.dir = fs.mkdtempSync(path.join(os.tmpdir(), `lloom-js-${name}-`));
    this.procs = [];
  }

  #start(kind, args) {
    const name = `${kind}${this.procs.filter((p) => p.kind === kind).length + 1}`;
    const home = path.join(this.dir, name);
    fs.mkdirSync(home);
    const log = path.join(home, 'log');
    const fd = fs.openSync(log, 'w');
    const child = spawn(LLOOM_BIN, args, { cwd: home, env: environ(home), stdio: ['ignore', fd, fd] });
    fs.closeSync(fd);
    const proc = { name, kind, args, child, log, code: null, signal: null, running: true };
    proc.exited = new Promise((resolve) => {
      child.on('error', (err) => {
        proc.spawnError = err;
        proc.running = false;
        live.delete(child);
        resolve();
      });
      child.on('exit', (code, signal) => {
        Object.assign(proc, { code, signal, running: false });
        live.delete(child);
        resolve();
      });
    });
    live.add(child);
    this.procs.push(proc);
    return proc;
  }

  logOf(proc) {
    try {
      return fs.readFileSync(proc.log, 'utf8');
    } catch {
      return '';
    }
  }

  // #alive is part of a waitFor condition: a process that died fails at once.
  #alive(proc) {
    if (!proc.running) {
      throw new Error(`${proc.name} (lloom ${proc.args.join(' ')}) exited: ${proc.spawnError ?? `code ${proc.code} signal ${proc.signal}`}\n${tail(this.logOf(proc), 30)}`);
    }
  }

  /** Starts a validator on loopback (with more flags: args) and waits for its address. */
  async validator({ args = [] } = {}) {
    const addrFile = path.join(this.dir, `validator-${this.procs.length}.addr`);
    const v = this.#start('validator', ['validator', '--listen', '/ip4/127.0.0.1/tcp/0', '--addr-file', addrFile, ...args]);
    await waitFor(`${v.name} address`, () => {
      this.#alive(v);
      const s = fs.existsSync(addrFile) ? fs.readFileSync(addrFile, 'utf8').trim() : '';
      return s !== '' || 'no address file yet';
    });
    v.addr = fs.readFileSync(addrFile, 'utf8').trim().split('\n')[0];
    return v;
  }

  /**
   * Starts an executor serving model from the backend at url (url null:
   * announce-only; model null: the models of a --config in args); waiting
   * for it is the gateway's job.
   */
  executor(validator, { url, model, capacity = 4, queue = null, args: more = [] }) {
    const args = ['executor', '--validator', validator.addr, '--listen', '/ip4/127.0.0.1/tcp/0',
      '--capacity', String(capacity), '--heartbeat-interval', '1s', '--inference-rate', '0'];
    if (url != null) args.push('--backend-url', url);
    if (model != null) args.push('--model', model);
    if (queue !== null) args.push('--queue', String(queue));
    return this.#start('executor', [...args, ...more]);
  }

  /**
   * Starts `lloom gateway` on a free loopback port and waits until it
   * answers HTTP. Returns the process with baseURL (…/v1).
   */
  async gateway(validator, { apiKey = null, maxConcurrent = null, timeout = null } = {}) {
    for (let attempt = 1; ; attempt++) {
      const port = await freePort();
      const args = ['gateway', '--listen', `127.0.0.1:${port}`, '--validator', validator.addr, '--models-refresh', '200ms'];
      if (apiKey !== null) args.push('--api-key', apiKey);
      if (maxConcurrent !== null) args.push('--max-concurrent', String(maxConcurrent));
      if (timeout !== null) args.push('--timeout', timeout);
      const g = this.#start('gateway', args);
      g.baseURL = `http://127.0.0.1:${port}/v1`;
      try {
        await waitFor(`${g.name} answering on 127.0.0.1:${port}`, async () => {
          this.#alive(g);
          await fetch(`${g.baseURL}/models`);
          return true;
        });
        return g;
      } catch (e) {
        // The port was free when asked but taken by the time it bound.
        if (attempt < 3 && /address already in use/.test(this.logOf(g))) continue;
        throw e;
      }
    }
  }

  /** Waits until the gateway lists model with this many healthy executors. */
  async waitModel(gateway, model, executors, apiKey = 'unused') {
    await waitFor(`${gateway.name} lists ${model} with ${executors} healthy executors`, async () => {
      this.#alive(gateway);
      const r = await fetch(`${gateway.baseURL}/models`, { headers: { authorization: `Bearer ${apiKey}` } });
      const list = await r.json();
      const m = list.data?.find((x) => x.id === model);
      return m?.lloom?.healthy === executors || `lists ${JSON.stringify(list.data?.map((x) => [x.id, x.lloom?.healthy]))}`;
    });
  }

  /**
   * Stops every process (executors and gateways first, then validators)
   * with SIGTERM, SIGKILL after 10 s, and throws if one did not exit
   * cleanly or its log shows a crash or a data race.
   */
  async stop() {
    const problems = [];
    for (const kinds of [['executor', 'gateway'], ['validator']]) {
      await Promise.all(this.procs.filter((p) => kinds.includes(p.kind) && p.running).map(async (p) => {
        p.child.kill('SIGTERM');
        const killed = await Promise.race([p.exited.then(() => false), delay(10_000, true, { ref: false })]);
        if (killed) {
          p.child.kill('SIGKILL');
          await p.exited;
          problems.push(`${p.name}: still running 10 s after SIGTERM`);
        } else if (p.code !== 0) {
          problems.push(`${p.name}: exit code ${p.code} signal ${p.signal} after SIGTERM, want 0`);
        }
      }));
    }
    for (const p of this.procs) {
      const bad = ['WARNING: DATA RACE', 'panic:', 'fatal error:'].find((s) => this.logOf(p).includes(s));
      if (bad) problems.push(`${p.name}: log shows "${bad}"`);
    }
    if (problems.length > 0) {
      const logs = this.procs.map((p) => `--- ${p.name} (${p.log}):\n${tail(this.logOf(p), 40)}`).join('\n');
      throw new Error(`${problems.join('\n')}\n${logs}`);
    }
    // run.sh keeps the directories when a test failed, and removes them.
    if (!process.env.LLOOM_JS_KEEP) fs.rmSync(this.dir, { recursive: true, force: true });
  }
}

function tail(s, n) {
  const lines = s.trimEnd().split('\n');
  return lines.slice(-n).join('\n');
}
