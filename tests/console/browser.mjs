// Helpers for the console's browser test: Debian's Chromium through playwright-core, and
// checks that fail with a message saying what was expected and what the page showed.

import { mkdtempSync, mkdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chromium } from "playwright-core";

// Offline and quiet: no update checks, sync, QUIC or first-run pages.
const FLAGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--disable-background-networking",
  "--disable-component-update",
  "--no-first-run",
  "--disable-sync",
];

/** A fresh Chromium profile at 1366×768 (a laptop screen); `close()` removes the profile. */
export async function openBrowser(executablePath) {
  const profile = mkdtempSync(join(tmpdir(), "ackgate-console-"));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath,
    headless: true,
    args: FLAGS,
    viewport: { width: 1366, height: 768 },
    timeout: 30_000,
  });
  const page = context.pages()[0] ?? (await context.newPage());
  const close = async () => {
    await context.close();
    rmSync(profile, { recursive: true, force: true });
  };
  return { page, close };
}

/** Throws `what` with the detail when `ok` is false. */
export function check(ok, what, detail = "") {
  if (!ok) throw new Error(detail ? `${what}\n  ${detail}` : what);
}

/** Polls `probe` until it returns a truthy value, or throws `what` after `seconds`. */
export async function until(what, seconds, probe) {
  const deadline = Date.now() + seconds * 1000;
  let last;
  for (;;) {
    last = await probe().catch((error) => ({ error }));
    if (last && !last.error) return last;
    if (Date.now() > deadline) {
      throw new Error(`timed out after ${seconds}s waiting for ${what}${last?.error ? `: ${last.error.message}` : ""}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
}

/** Saves a full-page screenshot as `<dir>/<name>.png` and prints its path. */
export async function screenshot(page, dir, name) {
  mkdirSync(dir, { recursive: true });
  const path = join(dir, `${name}.png`);
  await page.screenshot({ path, fullPage: true });
  console.log(`screenshot: ${path}`);
  return path;
}

/** Errors the page itself raised: uncaught exceptions and Content-Security-Policy refusals. */
export function watchErrors(page) {
  const errors = [];
  page.on("pageerror", (error) => errors.push(`uncaught: ${error.message}`));
  page.on("console", (message) => {
    const text = message.text();
    if (message.type() === "error" && /Content Security Policy|Refused to/i.test(text)) errors.push(text);
  });
  return errors;
}
