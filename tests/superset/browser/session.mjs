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

const logInOnce = async (page, url, username, password, timeoutMs) => {
  await page.goto(`${url}/login/`, { waitUntil: "domcontentloaded" });
  await page.locator('input[name="username"], #username').first().fill(username);
  await page.locator('input[type="password"]').first().fill(password);
  await Promise.all([
    page.waitForURL((u) => !u.pathname.startsWith("/login"), { timeout: timeoutMs }),
    page.locator('button[type="submit"], input[type="submit"]').first().click(),
  ]);
  // The login page's event-log beacon, sent before the form with the anonymous cookie, can be
  // answered after the login with an anonymous session cookie that replaces the new one (seen
  // once in CI: the welcome page drawn, then every API call 401). Let the page settle, then
  // ask Superset who we are.
  await page.waitForLoadState("networkidle", { timeout: 15000 }).catch(() => {});
  return (await page.request.get(`${url}/api/v1/me/`)).status() === 200;
};

// Logs in; tries once more if the session was lost. Returns whether it had to retry; throws when
// the second session is lost too (a refused password throws from waitForURL's timeout).
export const logIn = async (page, { url, username, password, timeoutMs }) => {
  if (await logInOnce(page, url, username, password, timeoutMs)) return false;
  if (await logInOnce(page, url, username, password, timeoutMs)) return true;
  throw new Error("logged in, but the session was lost twice");
};
