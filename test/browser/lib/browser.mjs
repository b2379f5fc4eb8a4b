// Headless Chromium from Debian, as the tests drive it: its own background
// networking off (no component updates, safe browsing, sync, metrics or
// field trials), a fresh profile, host names resolving to loopback only,
// and every request of a page to a non-loopback address intercepted,
// aborted and recorded so that the test fails on it. Console errors and
// uncaught exceptions are recorded too.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import puppeteer from 'puppeteer-core';

/** The browser: $LLOOM_CHROMIUM, else Debian's /usr/bin/chromium. */
export const CHROMIUM = process.env.LLOOM_CHROMIUM || '/usr/bin/chromium';

/** Where screenshots go: $LLOOM_SCREENSHOT_DIR, else a temporary directory. */
export const SCREENSHOT_DIR = process.env.LLOOM_SCREENSHOT_DIR || fs.mkdtempSync(path.join(os.tmpdir(), 'lloom-shots-'));

const FLAGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-dev-shm-usage',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--no-first-run',
  '--no-default-browser-check',
  '--disable-default-apps',
  '--disable-extensions',
  '--disable-domain-reliability',
  '--disable-client-side-phishing-detection',
  '--safebrowsing-disable-auto-update',
  '--disable-features=SafeBrowsing,SafeBrowsingEnhancedProtection,OptimizationHints,MediaRouter,DialMediaRouteProvider,Translate,AutofillServerCommunication,CertificateTransparencyComponentUpdater,InterestFeedContentSuggestions',
  '--disable-breakpad',
  '--metrics-recording-only',
  '--password-store=basic',
  '--use-mock-keychain',
  '--mute-audio',
  '--hide-scrollbars',
  '--force-color-profile=srgb',
  // Belt and braces: a name resolves to nothing unless it is loopback.
  '--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE localhost, EXCLUDE 127.0.0.1',
];

export function isLoopbackHost(host) {
  const h = host.replace(/^\[|\]$/g, '');
  return h === 'localhost' || h === '::1' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(h);
}

/**
 * Launches the browser with one page. Returns { browser, page, offLoopback,
 * errors, close }: offLoopback lists the URLs of requests to other
 * addresses (aborted), errors the page's console errors and exceptions.
 */
export async function launch({ width = 1400, height = 900 } = {}) {
  if (!fs.existsSync(CHROMIUM)) {
    throw new Error(`no browser at ${CHROMIUM}: apt-get install chromium, or set LLOOM_CHROMIUM`);
  }
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'lloom-chromium-'));
  const browser = await puppeteer.launch({
    executablePath: CHROMIUM,
    ignoreDefaultArgs: true,
    args: [...FLAGS, `--user-data-dir=${profile}`, `--window-size=${width},${height}`],
    pipe: true,
    defaultViewport: { width, height },
    protocolTimeout: 60_000,
  });
  const offLoopback = [];
  const errors = [];
  let closed = false;
  const watch = async (page) => {
    await page.setRequestInterception(true);
    page.on('request', (req) => {
      const u = new URL(req.url());
      if (['data:', 'blob:', 'about:'].includes(u.protocol) || isLoopbackHost(u.hostname)) {
        req.continue();
        return;
      }
      offLoopback.push(req.url());
      req.abort('blockedbyclient');
    });
    page.on('console', (msg) => {
      if (msg.type() === 'error') errors.push(`console: ${msg.text()}`);
    });
    page.on('pageerror', (err) => errors.push(`exception: ${err.message}`));
  };
  const [first] = await browser.pages();
  const page = first ?? (await browser.newPage());
  await watch(page);
  return {
    browser,
    page,
    offLoopback,
    errors,
    async close() {
      if (closed) return;
      closed = true;
      await browser.close();
      fs.rmSync(profile, { recursive: true, force: true });
    },
  };
}

/** Polls fn in the page until it returns true; any other value is the reason it does not hold yet. */
export async function waitInPage(page, what, fn, arg, timeoutMs = 30_000) {
  const deadline = Date.now() + timeoutMs;
  let last;
  for (;;) {
    try {
      last = await page.evaluate(fn, arg);
    } catch (e) {
      last = e.message;
    }
    if (last === true) return;
    if (Date.now() > deadline) throw new Error(`${what}: not within ${timeoutMs} ms: ${JSON.stringify(last)}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}
