// What every browser check starts with: Debian's headless Chromium (no browser download) and a
// login through Superset's form, as a person would, checked with /api/v1/me/.
import { chromium } from "playwright-core";

export const env = (name, fallback) => process.env[name] ?? fallback;

export const launchChromium = () =>
  chromium.launch({
    executablePath: env("CHROMIUM", "/usr/bin/chromium"),
    headless: true,
    args: [
      "--no-sandbox",
      "--disable-gpu",
      "--disable-dev-shm-usage",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
  });

// The form sends the browser on to `next`: Superset's own answer to "who am I" rather than its
// welcome page, whose lists and charts no check looks at and which cost each login about 1.7
// CPU-s of Chromium's and 0.4 of Superset's (measured against the live stack's Superset).
const AFTER_LOGIN = "/api/v1/me/";

const logInOnce = async (page, url, username, password, timeoutMs) => {
  await page.goto(`${url}/login/?next=${encodeURIComponent(AFTER_LOGIN)}`, { waitUntil: "domcontentloaded" });
  await page.locator('input[name="username"], #username').first().fill(username);
  await page.locator('input[type="password"]').first().fill(password);
  await Promise.all([
    page.waitForNavigation({ waitUntil: "domcontentloaded", timeout: timeoutMs }).catch(() => {}),
    page.locator('button[type="submit"], input[type="submit"]').first().click(),
  ]);
  // The login page's event-log beacon, sent as the form leaves with the anonymous cookie, can
  // be answered after the login with an anonymous session cookie that replaces the new one:
  // then the page after it, or every API call after it, bounces back to /login (seen in CI and
  // in compose-test). Let the page settle, then ask Superset who we are.
  await page.waitForLoadState("networkidle", { timeout: 15000 }).catch(() => {});
  return (await page.request.get(`${url}/api/v1/me/`)).status() === 200;
};

// Logs in, trying again while the session is lost (a wrong password fails every try). Returns
// how many extra tries it took; throws when none kept a session. A try that throws is a lost
// try too: after a lost session the page may still be bouncing to /login?next=... when the next
// try opens /login/, and Playwright fails that goto as "interrupted by another navigation"
// (seen in CI).
export const logIn = async (page, { url, username, password, timeoutMs }) => {
  let lastError = null;
  for (let retries = 0; retries < 3; retries += 1) {
    try {
      if (await logInOnce(page, url, username, password, timeoutMs)) return retries;
    } catch (error) {
      lastError = error;
    }
  }
  const last = lastError ? ` (last try: ${lastError.message.split("\n")[0]})` : "";
  throw new Error(`no session after 3 logins as ${username}: refused, or lost each time${last}`);
};
