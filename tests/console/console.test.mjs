// The support console, end to end in headless Chromium against a running stack (started by
// tests/tests/e2e/console.rs): find a command by keyboard, read its timeline, follow it to
// its officer and back, see a refusal in the live panel. Exits non-zero on any mismatch.
//
// node console.test.mjs --edge URL --accepted CORRELATION_ID --badge BADGE
//   --refused CORRELATION_ID --hidden TEXT[,TEXT] --chromium PATH --artifacts DIR

import { parseArgs } from "node:util";
import { check, openBrowser, screenshot, until, watchErrors } from "./browser.mjs";

const { values: args } = parseArgs({
  options: Object.fromEntries(
    ["edge", "accepted", "badge", "refused", "hidden", "chromium", "artifacts"].map((name) => [name, { type: "string" }]),
  ),
});
for (const [name, value] of Object.entries(args)) check(value, `--${name} is required`);
const hidden = args.hidden.split(",").filter(Boolean);
const FIRST_ATTEMPT = ["received", "requested", "ledger", "decided", "appended", "answered", "answered", "applied"];
// The retry (same Idempotency-Key) gets the stored reply: no decision, no second event.
const RETRY = ["received", "requested", "ledger", "answered", "answered"];

const { page, close } = await openBrowser(args.chromium);
const errors = watchErrors(page);
let failed = false;
try {
  await searchByKeyboard(page);
  await readTimeline(page);
  await followOfficerAndBack(page);
  await searchByBadgeAndFailures(page);
  await searchByTime(page);
  await liveFailures(page);
  await problemsAreShown(page);
  check(errors.length === 0, "the page raised errors", errors.join("\n  "));
  console.log("console test: all checks passed");
} catch (error) {
  failed = true;
  console.error(`console test FAILED: ${error.message}`);
  await screenshot(page, args.artifacts, "console-failure").catch(() => {});
} finally {
  await close();
}
process.exit(failed ? 1 : 0);

/** "/" focuses the search box; typing a correlationId and Enter opens its timeline. */
async function searchByKeyboard(page) {
  const response = await page.goto(`${args.edge}/console`);
  const headers = response.headers();
  check(headers["content-type"]?.startsWith("text/html"), "/console is HTML", headers["content-type"]);
  check(headers["content-security-policy"]?.includes("default-src 'self'"), "/console has a strict CSP", headers["content-security-policy"]);
  await page.locator("#view h2", { hasText: "Recent commands" }).waitFor({ timeout: 10_000 });
  await page.keyboard.press("/");
  const focused = await page.evaluate(() => ({
    id: document.activeElement?.id,
    outline: getComputedStyle(document.activeElement).outlineStyle,
  }));
  check(focused.id === "q", "'/' should focus the search box", `focus is on #${focused.id}`);
  check(focused.outline !== "none", "the focused search box should show a focus ring");
  await page.keyboard.type(args.accepted);
  await page.keyboard.press("Enter");
  await page.waitForURL(`**/console#/timeline/${encodeURIComponent(args.accepted)}`, { timeout: 10_000 });
}

/** The outcome, the ids, and the steps of both attempts (the request and its retry). */
async function readTimeline(page) {
  // The timeline fills asynchronously: the page refreshes itself until the command settles.
  const attempts = await until("both attempts' steps, projected", 20, async () => {
    const outcome = await page.locator(".summary .badge").getAttribute("data-outcome", { timeout: 1000 });
    const steps = await page.locator("section.attempt").evaluateAll((sections) =>
      sections.map((s) => [...s.querySelectorAll("li.step")].map((i) => i.dataset.step)));
    return outcome === "projected" && steps.flat().length === FIRST_ATTEMPT.length + RETRY.length && steps;
  });
  // The projections may apply the event before the services have answered: they run apart,
  // so the first attempt's `applied` only has to come after its `appended`.
  const [first, retried] = attempts;
  const requestPath = first.filter((step) => step !== "applied");
  const inOrder = JSON.stringify([requestPath, retried]) ===
    JSON.stringify([FIRST_ATTEMPT.filter((step) => step !== "applied"), RETRY]);
  check(inOrder && first.indexOf("applied") > first.indexOf("appended"), "steps grouped by attempt, in order", JSON.stringify(attempts));
  const retry = await page.locator("section.attempt").nth(1).innerText();
  check(retry.startsWith("Attempt 2 of 2 (retry)") && retry.includes("console-retry"), "the retry's heading and correlationId", retry);
  const summary = await page.locator(".summary").innerText();
  for (const expected of ["Projected", args.accepted, "RegisterOfficer", args.badge]) {
    check(summary.includes(expected), `the summary should show ${expected}`, summary);
  }
  const since = await page.locator("li.step .since").allInnerTexts();
  check(since[0] === "" && since.slice(1).every((s) => /^\+\d/.test(s)), "durations after the first step", since.join(" | "));
  const applied = await page.locator('li.step[data-step="applied"]').innerText();
  check(/projections/.test(applied) && /offset/.test(applied), "the applied step's component and offset", applied);
  check(await page.locator("li.step.failed").count() === 0, "an accepted command has no failed step");
  await noHiddenText(page, "timeline");
  await screenshot(page, args.artifacts, "console-timeline");
}

/** The aggregate links to the officer; the officer lists the command, linked back. */
async function followOfficerAndBack(page) {
  await page.locator(".summary a", { hasText: args.badge }).click();
  await page.locator("#view h2", { hasText: `Officer ${args.badge}` }).waitFor({ timeout: 10_000 });
  const profile = await page.locator("#view dl.facts").innerText();
  for (const expected of ["sergeant", "active", "version"]) {
    check(profile.includes(expected), `the officer should show ${expected}`, profile);
  }
  const back = page.locator(`table.commands a[href="#/timeline/${encodeURIComponent(args.accepted)}"]`);
  await back.waitFor({ timeout: 10_000 });
  await noHiddenText(page, "officer");
  await screenshot(page, args.artifacts, "console-officer");
  await back.focus();
  await page.keyboard.press("Enter");
  await page.locator(".summary .badge[data-outcome=projected]").waitFor({ timeout: 10_000 });
  await page.goBack();
  await page.locator("#view h2", { hasText: `Officer ${args.badge}` }).waitFor({ timeout: 10_000 });
}

/** A badge lists the officer's commands; "failures only" with an empty box lists the refusal. */
async function searchByBadgeAndFailures(page) {
  const box = page.locator("#q");
  await box.fill(args.badge);
  await box.press("Enter");
  await page.locator("#view h2", { hasText: `Search: ${args.badge}` }).waitFor({ timeout: 10_000 });
  const found = await listedCommands(page);
  check(found.includes(args.accepted) && !found.includes(args.refused), "the badge's commands", found.join(", "));
  await box.fill("");
  await page.locator("#failed").focus();
  await page.keyboard.press("Space");
  await page.keyboard.press("Enter");
  await page.locator("#view h2", { hasText: "Failed commands" }).waitFor({ timeout: 10_000 });
  const failures = await listedCommands(page);
  check(failures.length === 1 && failures[0] === args.refused, "only the refusal", failures.join(", "));
  await page.locator("#failed").uncheck();
}

/** A time range around now finds the command; a range that ends before it starts is a 400. */
async function searchByTime(page) {
  await page.locator("#from").fill(localTime(-3600));
  await page.locator("#to").fill(localTime(3600));
  await page.locator("#search button[type=submit]").press("Enter");
  await page.locator("#view h2", { hasText: "Recent commands" }).waitFor({ timeout: 10_000 });
  await until("the command in the time range", 10, async () => (await listedCommands(page)).includes(args.accepted));
  await screenshot(page, args.artifacts, "console-search");
  await page.locator("#from").fill(localTime(3600));
  await page.locator("#to").fill(localTime(-3600));
  await page.locator("#to").press("Enter");
  const problem = await page.locator(".problem[role=alert]").innerText({ timeout: 10_000 });
  check(/HTTP 400/.test(problem) && /invalid-query/.test(problem), "a 400 problem for a reversed range", problem);
  await page.locator("#from").fill("");
  await page.locator("#to").fill("");
}

/** Now plus `seconds`, as a `datetime-local` value in the browser's (and this process's) zone. */
function localTime(seconds) {
  const at = new Date(Date.now() + seconds * 1000);
  return new Date(at.getTime() - at.getTimezoneOffset() * 60_000).toISOString().slice(0, 19);
}

function listedCommands(page) {
  return page.locator("table.commands tbody tr td:first-child a").allInnerTexts();
}

/** The refusal appears in the live panel; opening it shows the failure highlighted. */
async function liveFailures(page) {
  const entry = page.locator(`#live-list li[data-correlation-id="${args.refused}"]`);
  await entry.waitFor({ timeout: 15_000 });
  check((await entry.innerText()).includes("Refused"), "the live entry says Refused", await entry.innerText());
  await entry.locator("a").focus();
  await page.keyboard.press("Enter");
  await page.locator(".summary .badge[data-outcome=refused]").waitFor({ timeout: 10_000 });
  const failure = await page.locator("li.step.failed").first().innerText();
  check(/Failure: schema-violation/.test(failure), "the failed step is highlighted with its code", failure);
  await screenshot(page, args.artifacts, "console-refusal");
  const toggle = page.locator("#live-toggle");
  await toggle.press("Enter");
  check(await toggle.getAttribute("aria-pressed") === "true", "Pause should press the toggle");
  check((await page.locator("#live-status").innerText()) === "Paused.", "the panel says it is paused");
}

/** An unknown correlationId shows a 404 problem, not an empty page. */
async function problemsAreShown(page) {
  await page.goto(`${args.edge}/console#/timeline/no-such-command`);
  const problem = await page.locator(".problem[role=alert]").innerText({ timeout: 10_000 });
  check(/not found/.test(problem) && /HTTP 404/.test(problem), "a 404 problem", problem);
}

async function noHiddenText(page, view) {
  const text = await page.locator("body").innerText();
  for (const secret of hidden) check(!text.includes(secret), `the ${view} view shows ${secret}, which is redacted`);
}
