// A notice from the app's backend, then the couple's dissolution, on the demo page (/demo) in
// headless Chromium: A (Korean) and B (English) both see the notice as the service's, set
// apart from their own messages; when the backend dissolves the couple, both pages say so
// and stop: no reconnect is tried (the server would refuse it), the composer is off.
//
// Usage: node demo_notice.mjs CONFIG_JSON
//   CONFIG_JSON: {"baseUrl", "tokenA", "tokenB", "roomId", "adminKey", "artifacts", "chromium"}
// Protocol with the caller: see demo_run.mjs (this driver asks nothing of it).
import { Run, connected, sendText, snapshot, stored, waitFor } from "./demo_run.mjs";

const config = JSON.parse(process.argv[2]);
const { baseUrl, tokenA, tokenB, roomId, adminKey, artifacts } = config;
const run = new Run({ artifacts, timeoutMs: 60000 });

const HELLO = "안녕! (before the notice)";
const NOTICE = "오늘은 두 분의 100일입니다 🎉";

async function admin(method, path, body) {
  const res = await fetch(`${baseUrl}/admin/v1${path}`, {
    method,
    headers: { Authorization: `Bearer ${adminKey}`, "Content-Type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (!res.ok) throw new Error(`${method} ${path}: ${res.status} ${await res.text()}`);
  return res.json();
}

const fatal = (page) =>
  page.evaluate(() => ({
    shown: !document.getElementById("fatal").hidden,
    title: document.getElementById("fatal-title").textContent,
    text: document.getElementById("fatal-text").textContent,
    conn: document.body.dataset.conn,
    inputDisabled: document.getElementById("input").disabled,
  }));

try {
  const browser = await run.launch(config.chromium);
  const result = { browser: browser.version() };
  const contextA = await browser.newContext({ viewport: { width: 390, height: 780 }, locale: "ko-KR" });
  const contextB = await browser.newContext({ viewport: { width: 412, height: 780 }, locale: "en-US" });
  const a = run.watch("a", await contextA.newPage());
  const b = run.watch("b", await contextB.newPage());
  const sockets = { a: 0, b: 0 };
  a.on("websocket", () => (sockets.a += 1));
  b.on("websocket", () => (sockets.b += 1));

  await run.step("both open the page; A says hello", async () => {
    await a.goto(`${baseUrl}/demo?token=${encodeURIComponent(tokenA)}`);
    await b.goto(`${baseUrl}/demo?token=${encodeURIComponent(tokenB)}`);
    await connected(a);
    await connected(b);
    await sendText(a, HELLO);
    await stored(b, HELLO);
  });

  await run.step("the backend sends a notice", async () => {
    result.notice = await admin("POST", `/couples/${roomId}/messages`, { content: NOTICE, tempId: "e2e-notice" });
    for (const page of [a, b]) {
      await waitFor(page, (t) => [...document.querySelectorAll("#messages li.msg.notice[data-seq]")]
        .some((li) => li.querySelector(".bubble").textContent === t), NOTICE);
    }
    result.noticeA = await a.evaluate(() => {
      const li = document.querySelector("#messages li.msg.notice");
      return { sender: li.querySelector(".sender")?.textContent ?? null, classes: [...li.classList] };
    });
    await run.shot("00-notice");
    result.beforeA = await snapshot(a);
    result.beforeB = await snapshot(b);
  });

  await run.step("the backend dissolves the couple: both pages stop", async () => {
    await admin("POST", `/couples/${roomId}/dissolve`);
    for (const page of [a, b]) {
      await waitFor(page, () => !document.getElementById("fatal").hidden);
    }
    const opened = { ...sockets };
    await new Promise((resolve) => setTimeout(resolve, 2500)); // a reconnect would come by now
    result.socketsAfter = { a: sockets.a - opened.a, b: sockets.b - opened.b };
    result.fatalA = await fatal(a);
    result.fatalB = await fatal(b);
    await run.shot("01-dissolved");
  });

  result.problems = { a: a.problems, b: b.problems };
  await run.finish(result);
} catch (err) {
  await run.fail(err);
}
