// Opens the Heart Rate Monitoring dashboard in headless Chromium (Debian's /usr/bin/chromium,
// driven by playwright-core: no browser download), waits until every chart has finished loading
// by polling the DOM, checks that no chart shows an error, and saves a screenshot.
//
// Settings (environment): SUPERSET_URL, SUPERSET_ADMIN_USERNAME, SUPERSET_ADMIN_PASSWORD,
// DASHBOARD_SLUG, EXPECTED_CHARTS, SCREENSHOT, CHROMIUM (default /usr/bin/chromium), TIMEOUT_MS,
// SETTLE_MS (pause between "every chart rendered" and the screenshot, default 2000),
// FOLLOW_CUSTOMER_LINK (1: then click the first link to the customer dashboard and check it;
// FOLLOW_EXPECTED_CHARTS, FOLLOW_SCREENSHOT), REVISIT (1: open the dashboard a second time, browser cache warm, and time that too),
// CUSTOMER (optional: open the dashboard with its Customer filter set to this customer id),
// TIME_RANGE (optional: its Time range filter, in Superset's syntax, e.g. "Last month").
// Prints one JSON report on stdout (with browser_cpu_s: Chromium's CPU seconds for the first visit
// and the revisit); exits 1 when a check fails.
import { descendantsCpuSeconds } from "./cpu.mjs";
import { env, launchChromium, logIn } from "./session.mjs";

const url = env("SUPERSET_URL", "http://localhost:8088").replace(/\/$/, "");
const slug = env("DASHBOARD_SLUG", "heart-rate-monitoring");
const expected = Number(env("EXPECTED_CHARTS", "0"));
const timeoutMs = Number(env("TIMEOUT_MS", "90000"));
const screenshot = env("SCREENSHOT", "dashboard.png");
const customer = env("CUSTOMER", "");
const timeRange = env("TIME_RANGE", "");

// The dashboard's native filter state in the URL (rison), as Superset writes it when shared.
const risonString = (value) => `'${value.replace(/!/g, "!!").replace(/'/g, "!'")}'`;
const customerFilter = (id) =>
  "NATIVE_FILTER-customer:(extraFormData:(filters:!((col:customer_id,op:IN,val:!(" +
  risonString(id) + ")))),filterState:(value:!(" + risonString(id) +
  ")),id:NATIVE_FILTER-customer,ownState:())";
const timeRangeFilter = (range) =>
  "NATIVE_FILTER-time-range:(extraFormData:(time_range:" + risonString(range) +
  "),filterState:(value:" + risonString(range) + "),id:NATIVE_FILTER-time-range,ownState:())";
const nativeFilters = [
  ...(customer ? [customerFilter(customer)] : []),
  ...(timeRange ? [timeRangeFilter(timeRange)] : []),
];

const report = {
  ok: false,
  timings_ms: {},
  charts: [],
  chart_data_requests: [],
  chart_data_responses: [],
  page_errors: [],
  problems: [],
};
const t0 = Date.now();
const mark = (name) => (report.timings_ms[name] = Date.now() - t0);
// Chromium's CPU seconds (all its processes) between two marks: what a visit costs the cores.
report.browser_cpu_s = {};
let cpuFrom = null;
const cpuStart = () => (cpuFrom = descendantsCpuSeconds());
const cpuEnd = (name) => {
  const now = descendantsCpuSeconds();
  report.browser_cpu_s[name] = cpuFrom === null || now === null ? null : +(now - cpuFrom).toFixed(2);
};

const browser = await launchChromium();
mark("browser_started");
try {
  const page = await browser.newPage({ viewport: { width: 1600, height: 1700 } });
  page.setDefaultTimeout(timeoutMs);
  // Uncaught exceptions of the page are reported, not failed on: the verdict is the charts'.
  page.on("pageerror", (error) => report.page_errors.push(error.message));
  page.on("request", (request) => {
    if (!request.url().includes("/api/v1/chart/data") || request.method() !== "POST") return;
    try {
      const body = JSON.parse(request.postData() || "{}");
      const filters = (body.queries || []).flatMap((q) => q.filters || []);
      const customers = filters.filter((f) => f.col === "customer_id").flatMap((f) => f.val);
      report.chart_data_requests.push({
        slice_id: body.form_data?.slice_id ?? null,
        customer_filter: customers.length > 0,
        customers,
      });
    } catch {
      report.chart_data_requests.push({ slice_id: null, customer_filter: null });
    }
  });
  // A response's body is read after it arrives: keep each read, and wait for all of them before
  // the report is judged (on a busy machine some were still being read when the charts drew).
  const bodyReads = [];
  page.on("response", (response) => {
    if (!response.url().includes("/api/v1/chart/data")) return;
    const entry = { status: response.status() };
    report.chart_data_responses.push(entry);
    bodyReads.push(
      response.json().then(
        (body) => {
          entry.rows = (body.result || []).map((r) => r.rowcount ?? r.data?.length ?? null);
          entry.errors = (body.result || []).flatMap((r) => r.error ? [r.error] : []);
        },
        () => {
          entry.rows = null;
        },
      ),
    );
  });

  // Log in through the form, as a person would.
  report.login_retried = await logIn(page, {
    url,
    username: env("SUPERSET_ADMIN_USERNAME", "admin"),
    password: env("SUPERSET_ADMIN_PASSWORD", ""),
    timeoutMs,
  });
  mark("logged_in");

  const query = nativeFilters.length
    ? `?native_filters=${encodeURIComponent(`(${nativeFilters.join(",")})`)}`
    : "";
  cpuStart();
  await page.goto(`${url}/superset/dashboard/${slug}/${query}`, { waitUntil: "domcontentloaded" });
  mark("dashboard_requested");

  // Poll the DOM: every chart holder is present, no spinner is left, and each holder either
  // rendered something (canvas, svg, table, big number) or shows an error.
  const inspect = () => {
    const holders = [...document.querySelectorAll("[data-test-chart-id]")];
    return holders.map((holder) => {
      const error = holder.querySelector('[role="alert"], .ant-alert-error, [data-test="error-tooltip"]');
      const loading = holder.querySelector('[data-test="loading-indicator"], .loading, [aria-label="Loading"]');
      const rendered = holder.querySelector("canvas, svg, table, .header-line, .big-number");
      return {
        id: Number(holder.getAttribute("data-test-chart-id")),
        name: holder.getAttribute("data-test-chart-name"),
        viz: holder.getAttribute("data-test-viz-type"),
        error: error ? (error.textContent || "error").trim().slice(0, 300) : null,
        loading: Boolean(loading),
        rendered: Boolean(rendered),
      };
    });
  };
  const settled = (charts, count = expected) =>
    charts.length > 0 &&
    charts.length >= count &&
    charts.every((c) => c.error || (!c.loading && c.rendered));
  const waitForCharts = async (count = expected) => {
    const deadline = Date.now() + timeoutMs;
    let charts = await page.evaluate(inspect);
    while (!settled(charts, count)) {
      if (Date.now() > deadline) {
        report.charts = charts;
        await page.screenshot({ path: screenshot, fullPage: true }).catch(() => {});
        const pending = charts.filter((c) => !(c.error || (!c.loading && c.rendered)));
        throw new Error(
          `charts not rendered after ${timeoutMs} ms: ${JSON.stringify(pending)} (${charts.length} holders)`,
        );
      }
      await page.waitForTimeout(100); // the polling interval
      charts = await page.evaluate(inspect);
    }
    return charts;
  };
  report.charts = await waitForCharts();
  mark("charts_rendered");
  cpuEnd("first_visit");

  // ECharts draws lines and bars with a ~1 s entry animation after the canvas exists: let it
  // finish, or the screenshot shows half-drawn series.
  await page.waitForTimeout(Number(env("SETTLE_MS", "2000")));
  await page.screenshot({ path: screenshot, fullPage: true });
  mark("screenshot_saved");
  report.screenshot = screenshot;

  // REVISIT=1: open the dashboard again in the same browser, its static files now cached, as
  // an analyst's second visit (or a reload) is.
  if (env("REVISIT", "") === "1") {
    mark("revisit_requested");
    cpuStart();
    await page.goto(`${url}/superset/dashboard/${slug}/${query}`, { waitUntil: "domcontentloaded" });
    await waitForCharts();
    mark("revisit_rendered");
    cpuEnd("revisit");
  }

  // FOLLOW_CUSTOMER_LINK=1: click the first link to the customer dashboard (the alerts table's
  // customer column) and wait until that dashboard's charts are drawn too.
  if (env("FOLLOW_CUSTOMER_LINK", "") === "1") {
    const link = page.locator('a[href*="/superset/dashboard/customer-detail/"]').first();
    const customerText = ((await link.textContent()) || "").trim();
    const before = report.chart_data_requests.length;
    await Promise.all([
      page.waitForURL((u) => u.pathname.includes("/superset/dashboard/customer-detail/")),
      link.click(),
    ]);
    mark("link_followed");
    const followed = await waitForCharts(Number(env("FOLLOW_EXPECTED_CHARTS", "1")));
    mark("linked_dashboard_rendered");
    await page.waitForTimeout(Number(env("SETTLE_MS", "2000")));
    const followScreenshot = env("FOLLOW_SCREENSHOT", "");
    if (followScreenshot) await page.screenshot({ path: followScreenshot, fullPage: true });
    report.followed = {
      customer: customerText,
      url: page.url(),
      charts: followed,
      requests: report.chart_data_requests.slice(before),
    };
    for (const chart of followed) {
      if (chart.error) report.problems.push(`linked chart ${chart.name} shows an error: ${chart.error}`);
    }
  }

  await Promise.allSettled(bodyReads);
  mark("responses_read");
  for (const chart of report.charts) {
    if (chart.error) report.problems.push(`chart ${chart.name} shows an error: ${chart.error}`);
  }
  for (const response of report.chart_data_responses) {
    if (response.status !== 200 || (response.errors || []).length) {
      report.problems.push(`chart data answered ${response.status}: ${JSON.stringify(response.errors)}`);
    }
  }
  if (expected && report.charts.length !== expected) {
    report.problems.push(`expected ${expected} charts, found ${report.charts.length}`);
  }
  report.ok = report.problems.length === 0;
} catch (error) {
  report.problems.push(String(error && error.stack ? error.stack : error));
} finally {
  await browser.close();
  mark("done");
}
console.log(JSON.stringify(report, null, 2));
process.exit(report.ok ? 0 : 1);
