// Logs into Superset in headless Chromium (Debian's /usr/bin/chromium, driven by playwright-core)
// and opens each of PATHS (comma-separated) as a person would type it: for each page, the HTTP
// status of its document, the URL it ended on, whether SQL Lab's editor or Explore's chart
// editor appeared, the page's visible text (first 2,000 characters) and a screenshot.
//
// Settings (environment): SUPERSET_URL, SUPERSET_USERNAME, SUPERSET_PASSWORD, PATHS,
// SCREENSHOT_PREFIX, CHROMIUM (default /usr/bin/chromium), TIMEOUT_MS, SETTLE_MS (default 30000:
// how long a page may take to draw its editor or its refusal before it is judged), CALLS (a JSON list of
// {method, path, body}: requests the logged-in page sends with fetch, its session cookie and the
// CSRF token Superset put in the page, as the frontend does; their statuses are reported).
// Prints one JSON report on stdout; exits 1 only when the browser itself failed.
import { env, launchChromium, logIn } from "./session.mjs";

const url = env("SUPERSET_URL", "http://localhost:8088").replace(/\/$/, "");
const timeoutMs = Number(env("TIMEOUT_MS", "90000"));
const settleMs = Number(env("SETTLE_MS", "30000"));
const paths = env("PATHS", "").split(",").filter(Boolean);
const report = { ok: false, logged_in: false, pages: [], problems: [] };

const browser = await launchChromium();
try {
  const page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
  page.setDefaultTimeout(timeoutMs);
  const apiAnswers = [];
  page.on("response", (response) => {
    const u = new URL(response.url());
    if (u.pathname.startsWith("/api/")) apiAnswers.push({ path: u.pathname, status: response.status() });
  });

  report.login_retried = await logIn(page, {
    url,
    username: env("SUPERSET_USERNAME", ""),
    password: env("SUPERSET_PASSWORD", ""),
    timeoutMs,
  });
  report.logged_in = true;

  const calls = JSON.parse(env("CALLS", "[]"));
  if (calls.length) {
    await page.goto(`${url}/dashboard/list/`, { waitUntil: "domcontentloaded" });
    report.calls = await page.evaluate(async (calls) => {
      const csrf = document.getElementById("csrf_token")?.value || "";
      const answers = [];
      for (const call of calls) {
        const response = await fetch(call.path, {
          method: call.method,
          headers: { "Content-Type": "application/json", "X-CSRFToken": csrf },
          body: call.body === undefined ? undefined : JSON.stringify(call.body),
          redirect: "manual",
        });
        const text = (await response.text()).slice(0, 300);
        answers.push({ ...call, status: response.status, csrf: Boolean(csrf), text });
      }
      return answers;
    }, calls);
  }

  for (const [index, path] of paths.entries()) {
    apiAnswers.length = 0;
    const response = await page.goto(`${url}${path}`, { waitUntil: "domcontentloaded" });
    // The single-page app draws (or refuses) after load: poll until an editor is drawn, the page
    // says access is denied, or it left the address asked for; then judge it.
    const look = () => {
      const text = (document.body?.innerText || "").slice(0, 2000);
      return {
        // SQL Lab's editor; Explore's chart editor (its data panel and the "Update chart" button)
        sql_editor: Boolean(document.querySelector('.ace_editor, [data-test="sql-editor-tabs"], #ace-editor')),
        chart_editor: /Chart Source/.test(text) && /Update chart/i.test(text),
        text,
        pathname: location.pathname,
      };
    };
    const deadline = Date.now() + settleMs;
    let found = await page.evaluate(look);
    while (
      Date.now() < deadline &&
      !(found.sql_editor || found.chart_editor || /access is denied|forbidden/i.test(found.text))
    ) {
      await page.waitForTimeout(200); // the polling interval
      found = await page.evaluate(look);
    }
    const screenshot = `${env("SCREENSHOT_PREFIX", "visit")}-${index}.png`;
    await page.screenshot({ path: screenshot, fullPage: false });
    report.pages.push({
      path,
      status: response ? response.status() : null,
      // the redirects the document went through (FAB answers 302 and flashes "Access is Denied")
      redirected_from: response ? response.request().redirectedFrom()?.url() ?? null : null,
      final_url: page.url(),
      ...found,
      api: apiAnswers.slice(0, 40),
      screenshot,
    });
  }
  report.ok = true;
} catch (error) {
  report.problems.push(String(error && error.stack ? error.stack : error));
} finally {
  await browser.close();
}
console.log(JSON.stringify(report, null, 2));
process.exit(report.ok ? 0 : 1);
