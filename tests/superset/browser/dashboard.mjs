// Opens Superset dashboards in headless Chromium (Debian's /usr/bin/chromium, driven by
// playwright-core: no browser download), waits until every chart has finished loading by
// polling the DOM, checks that no chart shows an error, and saves a screenshot.
//
// One dashboard (settings from the environment): SUPERSET_URL, SUPERSET_ADMIN_USERNAME,
// SUPERSET_ADMIN_PASSWORD, DASHBOARD_SLUG, EXPECTED_CHARTS, SCREENSHOT, CHROMIUM (default
// /usr/bin/chromium), TIMEOUT_MS, SETTLE_MS (pause between "every chart rendered" and the
// screenshot, default 2000), FOLLOW_CUSTOMER_LINK (1: then click the first link to the customer
// dashboard and check it; FOLLOW_EXPECTED_CHARTS, FOLLOW_SCREENSHOT), REVISIT (1: open the
// dashboard a second time, browser cache warm, and time that too), CUSTOMER (optional: open the
// dashboard with its Customer filter set to this customer id), TIME_RANGE (optional: its Time
// range filter, in Superset's syntax, e.g. "Last month"). Prints one JSON report on stdout (with
// browser_cpu_s: Chromium's CPU seconds for the first visit and the revisit); exits 1 when a
// check fails.
//
// Several dashboards: VISITS, a JSON list of {slug, expected_charts, screenshot, customer,
// time_range, revisit, follow_customer_link (charts expected there; 0: no link followed),
// follow_screenshot}, opened one after another in one browser after one login (a Chromium start
// and a login are half a visit's CPU), each in a tab of its own: Superset keeps a dashboard's
// last filters per browser tab, so a dashboard opened again in the same tab first asks for the
// customer it showed before. Prints {ok, login_retried, visits: [one report each]}; a visit that
// fails is reported and the next one still runs.
import { descendantsCpuSeconds } from "./cpu.mjs";
import { env, launchChromium, logIn } from "./session.mjs";

const url = env("SUPERSET_URL", "http://localhost:8088").replace(/\/$/, "");
const timeoutMs = Number(env("TIMEOUT_MS", "90000"));
const settleMs = Number(env("SETTLE_MS", "2000"));

const visitFromEnvironment = () => ({
  slug: env("DASHBOARD_SLUG", "heart-rate-monitoring"),
  expected_charts: Number(env("EXPECTED_CHARTS", "0")),
  screenshot: env("SCREENSHOT", "dashboard.png"),
  customer: env("CUSTOMER", ""),
  time_range: env("TIME_RANGE", ""),
  revisit: env("REVISIT", "") === "1",
  follow_customer_link:
    env("FOLLOW_CUSTOMER_LINK", "") === "1" ? Number(env("FOLLOW_EXPECTED_CHARTS", "1")) : 0,
  follow_screenshot: env("FOLLOW_SCREENSHOT", ""),
});

// The dashboard's native filter state in the URL (rison), as Superset writes it when shared.
const risonString = (value) => `'${value.replace(/!/g, "!!").replace(/'/g, "!'")}'`;
const customerFilter = (id) =>
  "NATIVE_FILTER-customer:(extraFormData:(filters:!((col:customer_id,op:IN,val:!(" +
  risonString(id) + ")))),filterState:(value:!(" + risonString(id) +
  ")),id:NATIVE_FILTER-customer,ownState:())";
const timeRangeFilter = (range) =>
  "NATIVE_FILTER-time-range:(extraFormData:(time_range:" + risonString(range) +
  "),filterState:(value:" + risonString(range) + "),id:NATIVE_FILTER-time-range,ownState:())";
const dashboardUrl = ({ slug, customer, time_range: timeRange }) => {
  const filters = [
    ...(customer ? [customerFilter(customer)] : []),
    ...(timeRange ? [timeRangeFilter(timeRange)] : []),
  ];
  const query = filters.length ? `?native_filters=${encodeURIComponent(`(${filters.join(",")})`)}` : "";
  return `${url}/superset/dashboard/${slug}/${query}`;
};

const newReport = () => ({
  ok: false,
  timings_ms: {},
  charts: [],
  chart_data_requests: [],
  chart_data_responses: [],
  page_errors: [],
  problems: [],
  browser_cpu_s: {},
});

const t0 = Date.now();
// The chart-data bodies still being read (judge waits for them): one visit runs at a time.
const bodyReads = [];
const mark = (report, name) => (report.timings_ms[name] = Date.now() - t0);
// Chromium's CPU seconds (all its processes) between two marks: what a visit costs the cores.
let cpuFrom = null;
const cpuStart = () => (cpuFrom = descendantsCpuSeconds());
const cpuEnd = (report, name) => {
  const now = descendantsCpuSeconds();
  report.browser_cpu_s[name] = cpuFrom === null || now === null ? null : +(now - cpuFrom).toFixed(2);
};
const describe = (error) => String(error && error.stack ? error.stack : error);

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
const settled = (charts, count) =>
  charts.length > 0 && charts.length >= count && charts.every((c) => c.error || (!c.loading && c.rendered));
const waitForCharts = async (page, report, count, screenshot) => {
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

// The page's events, recorded into its visit's report (each visit has a page of its own).
const watch = (page, report) => {
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
  page.on("response", (response) => {
    if (!response.url().includes("/api/v1/chart/data")) return;
    const entry = { status: response.status() };
    report.chart_data_responses.push(entry);
    bodyReads.push(
      response.json().then(
        (body) => {
          entry.rows = (body.result || []).map((r) => r.rowcount ?? r.data?.length ?? null);
          entry.errors = (body.result || []).flatMap((r) => (r.error ? [r.error] : []));
        },
        () => {
          entry.rows = null;
        },
      ),
    );
  });
};

const newPage = async (context, report) => {
  const page = await context.newPage();
  page.setDefaultTimeout(timeoutMs);
  watch(page, report);
  return page;
};

// One dashboard, in a new tab of the logged-in browser: its charts, the revisit and the followed
// link if asked.
const openDashboard = async (page, visit, report) => {
  const address = dashboardUrl(visit);
  cpuStart();
  await page.goto(address, { waitUntil: "domcontentloaded" });
  mark(report, "dashboard_requested");
  report.charts = await waitForCharts(page, report, visit.expected_charts, visit.screenshot);
  mark(report, "charts_rendered");
  cpuEnd(report, "first_visit");

  // ECharts draws lines and bars with a ~1 s entry animation after the canvas exists: let it
  // finish, or the screenshot shows half-drawn series.
  await page.waitForTimeout(settleMs);
  await page.screenshot({ path: visit.screenshot, fullPage: true });
  mark(report, "screenshot_saved");
  report.screenshot = visit.screenshot;

  // Open the dashboard again in the same browser, its static files now cached, as an analyst's
  // second visit (or a reload) is.
  if (visit.revisit) {
    mark(report, "revisit_requested");
    cpuStart();
    await page.goto(address, { waitUntil: "domcontentloaded" });
    await waitForCharts(page, report, visit.expected_charts, visit.screenshot);
    mark(report, "revisit_rendered");
    cpuEnd(report, "revisit");
  }

  // Click the first link to the customer dashboard (the alerts table's customer column) and
  // wait until that dashboard's charts are drawn too.
  if (visit.follow_customer_link) {
    const link = page.locator('a[href*="/superset/dashboard/customer-detail/"]').first();
    const customerText = ((await link.textContent()) || "").trim();
    const before = report.chart_data_requests.length;
    await Promise.all([
      page.waitForURL((u) => u.pathname.includes("/superset/dashboard/customer-detail/")),
      link.click(),
    ]);
    mark(report, "link_followed");
    const followed = await waitForCharts(page, report, visit.follow_customer_link, visit.screenshot);
    mark(report, "linked_dashboard_rendered");
    await page.waitForTimeout(settleMs);
    if (visit.follow_screenshot) await page.screenshot({ path: visit.follow_screenshot, fullPage: true });
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
};

// Every body read, then the verdict on what the visit recorded.
const judge = async (visit, report) => {
  await Promise.allSettled(bodyReads.splice(0));
  mark(report, "responses_read");
  for (const chart of report.charts) {
    if (chart.error) report.problems.push(`chart ${chart.name} shows an error: ${chart.error}`);
  }
  for (const response of report.chart_data_responses) {
    if (response.status !== 200 || (response.errors || []).length) {
      report.problems.push(`chart data answered ${response.status}: ${JSON.stringify(response.errors)}`);
    }
  }
  if (visit.expected_charts && report.charts.length !== visit.expected_charts) {
    report.problems.push(`expected ${visit.expected_charts} charts, found ${report.charts.length}`);
  }
  report.ok = report.problems.length === 0;
};

const many = process.env.VISITS !== undefined;
const visits = many ? JSON.parse(process.env.VISITS) : [visitFromEnvironment()];
const session = { ok: false, login_retried: null, problems: [], visits: [] };

// The first visit's report also times the browser's start and the login; the last, the close.
let report = newReport();
const browser = await launchChromium();
mark(report, "browser_started");
try {
  const context = await browser.newContext({ viewport: { width: 1600, height: 1700 } });
  let page = await newPage(context, report);
  // Log in through the form, as a person would.
  session.login_retried = await logIn(page, {
    url,
    username: env("SUPERSET_ADMIN_USERNAME", "admin"),
    password: env("SUPERSET_ADMIN_PASSWORD", ""),
    timeoutMs,
  });
  mark(report, "logged_in");
  for (const [index, visit] of visits.entries()) {
    if (index > 0) {
      await page.close(); // its requests and events end with it
      report = newReport();
      page = await newPage(context, report);
    }
    try {
      await openDashboard(page, visit, report);
    } catch (error) {
      report.problems.push(describe(error));
    }
    await judge(visit, report);
    session.visits.push(report);
  }
} catch (error) {
  // The browser or the login failed: no visit ran (or the one under way is reported as failed).
  session.problems.push(describe(error));
  report.problems.push(describe(error));
  if (!session.visits.includes(report)) session.visits.push(report);
} finally {
  await browser.close();
  mark(report, "done");
}
session.ok = session.problems.length === 0 && session.visits.every((visit) => visit.ok);
const output = many ? session : { ...session.visits[0], login_retried: session.login_retried };
console.log(JSON.stringify(output, null, 2));
process.exit(session.ok ? 0 : 1);
