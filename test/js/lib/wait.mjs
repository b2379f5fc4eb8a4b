// Polling with a deadline instead of sleeping.

export const TIMEOUT_MS = 30_000;

/**
 * Calls cond every 20 ms until it returns true; any other value is the
 * reason it does not hold yet. Throws, with the last reason, after
 * timeoutMs.
 */
export async function waitFor(what, cond, timeoutMs = TIMEOUT_MS) {
  const deadline = Date.now() + timeoutMs;
  let last;
  for (;;) {
    try {
      last = await cond();
    } catch (e) {
      last = e.message;
    }
    if (last === true) return;
    if (Date.now() > deadline) throw new Error(`${what}: not within ${timeoutMs} ms: ${last}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}
