// The demo page's device and notifications in headless Chromium (a normal profile, not an
// incognito one: Chromium has no Push API there), driven over the DevTools protocol
// (cdp.mjs: Playwright would hold the page visible). Notifications are allowed for the
// server's origin. The page registers its service worker, says which device it is on STOMP
// CONNECT (the same id after a reload), tries Web Push with the server's VAPID key, and when
// the partner's message arrives while its tab is behind another one it shows a notification,
// read back with the real registration.getNotifications().
//
// Usage: node demo_push.mjs CONFIG_JSON
//   CONFIG_JSON: {"baseUrl", "tokenA", "tokenB", "roomId", "artifacts", "chromium"}
// Prints JSON lines; the last is {"event":"result",...} (exit status 0) or
// {"event":"error",...} (exit status 1), as the drivers of demo_run.mjs do.
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { Browser } from "./cdp.mjs";

const config = JSON.parse(process.argv[2]);
const { baseUrl, tokenA, tokenB, roomId, artifacts } = config;

const STEP_TIMEOUT = 12000;
const PUSH_SETTLE_MS = 30000; // the page gives a push service 20 s to answer a subscribe
const VISIBLE_TEXT = "보이는 동안 온 메시지 (while visible)";
const HIDDEN_TEXT = "탭이 숨겨진 동안 온 메시지 (while hidden)";
const AFTER_TEXT = "다시 보이는 동안 (after the reload)";

const emit = (event) => process.stdout.write(JSON.stringify(event) + "\n");
let step = "launch";
let browser = null;
let page = null;
const screenshots = [];

async function shot(name) {
  const path = join(artifacts, `${name}-a.png`);
  await page.screenshot(path);
  screenshots.push(path);
}

async function sendAsB(content) {
  const res = await fetch(`${baseUrl}/chat/rooms/${roomId}/messages`, {
    method: "POST",
    headers: { Authorization: `Bearer ${tokenB}`, "Content-Type": "application/json" },
    body: JSON.stringify({ type: "TEXT", content }),
  });
  if (res.status !== 201) throw new Error(`send as B: ${res.status} ${await res.text()}`);
  return res.json();
}

// The x-device-id of every STOMP CONNECT the page sent.
function connects() {
  return page.framesSent
    .map((frame) => frame.split("\n"))
    .filter(([command]) => command === "CONNECT" || command === "STOMP")
    .map((lines) => {
      const header = lines.find((line) => line.startsWith("x-device-id:"));
      return header ? header.slice("x-device-id:".length) : null;
    });
}

const NOTIFICATIONS = `(async () => {
  const registration = await navigator.serviceWorker.getRegistration("/demo");
  const shown = registration ? await registration.getNotifications() : [];
  return shown.map((n) => ({ title: n.title, body: n.body, tag: n.tag, data: n.data }));
})()`;

const stored = (text) =>
  page.waitFor(
    `[...document.querySelectorAll("#messages li.msg[data-seq]")].some(
      (li) => li.querySelector(".bubble").textContent === ${JSON.stringify(text)})`,
    STEP_TIMEOUT,
    `the message ${text}`,
  );

const connected = () => page.waitFor(`document.body.dataset.conn === "connected"`, STEP_TIMEOUT, "connected");

try {
  mkdirSync(artifacts, { recursive: true });
  const deadline = setTimeout(() => {
    emit({ event: "error", step, message: "the whole run took too long", screenshots });
    process.exit(1);
  }, 90000);
  browser = await Browser.launch(config.chromium);
  const result = { browser: await browser.version() };
  await browser.send("Browser.grantPermissions", { origin: baseUrl, permissions: ["notifications"] });
  page = await browser.firstPage();

  step = "A opens the page: worker, device id, push registration";
  await page.goto(`${baseUrl}/demo?token=${encodeURIComponent(tokenA)}&lang=ko`);
  await connected();
  await page.waitFor("document.body.dataset.push", PUSH_SETTLE_MS, "the push registration's outcome");
  result.page = await page.evaluate(`(async () => {
    const registration = await navigator.serviceWorker.getRegistration("/demo");
    const subscription = registration ? await registration.pushManager.getSubscription() : null;
    const status = document.getElementById("push-status");
    return {
      push: document.body.dataset.push,
      pushText: status.textContent,
      pushDetail: status.title,
      permission: Notification.permission,
      deviceId: localStorage.getItem("ieum-chat.device-id"),
      worker: registration ? {
        scope: registration.scope,
        active: Boolean(registration.active),
        script: registration.active && registration.active.scriptURL,
      } : null,
      subscription: subscription ? subscription.toJSON() : null,
    };
  })()`);
  result.page.problems = [...page.problems];
  await shot("00-opened");

  step = "a message while visible shows no notification";
  await sendAsB(VISIBLE_TEXT);
  await stored(VISIBLE_TEXT);
  result.visibleNotifications = await page.evaluate(NOTIFICATIONS);

  step = "another tab comes to the front: A is hidden";
  const other = await browser.openTab(`${baseUrl}/healthz`);
  await page.waitFor(`document.visibilityState === "hidden"`, STEP_TIMEOUT, "the page hidden");
  result.hidden = await page.evaluate(`({ state: document.visibilityState, hidden: document.hidden })`);

  step = "the partner's message while hidden: a notification";
  result.sent = await sendAsB(HIDDEN_TEXT);
  await page.waitFor(
    `${NOTIFICATIONS}.then((shown) => shown.some((n) => n.body === ${JSON.stringify(HIDDEN_TEXT)}))`,
    STEP_TIMEOUT,
    "the notification",
  );
  result.hiddenNotifications = await page.evaluate(NOTIFICATIONS);
  result.notified = await page.evaluate("Number(document.body.dataset.notified || 0)");

  step = "back in front, a reload keeps the device id";
  await browser.closeTab(other);
  await page.waitFor(`document.visibilityState === "visible"`, STEP_TIMEOUT, "the page visible");
  await page.reload();
  await connected();
  result.afterReload = await page.evaluate(`localStorage.getItem("ieum-chat.device-id")`);
  await sendAsB(AFTER_TEXT);
  await stored(AFTER_TEXT);
  await shot("01-reloaded");

  result.connects = connects();
  result.problems = { a: page.problems };
  clearTimeout(deadline);
  await browser.close();
  emit({ event: "result", ...result, screenshots });
  process.exit(0);
} catch (err) {
  try {
    if (page) await shot(`error-${step.replace(/\W+/g, "-")}`);
  } catch (_) {
    // the page may be gone
  }
  emit({
    event: "error",
    step,
    message: String((err && err.stack) || err),
    problems: { a: page ? page.problems : [] },
    screenshots,
  });
  if (browser) await browser.close().catch(() => {});
  process.exit(1);
}
