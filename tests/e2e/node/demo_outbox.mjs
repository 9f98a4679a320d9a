// The demo page's outbox across a reload, in headless Chromium: A's browser loses the chat
// server (its WebSockets, SockJS and every REST call under /chat/ are refused; the page itself,
// /demo, still loads, as from a cache), A sends a message, and reloads the page while still cut
// off. The reloaded page finds the message in IndexedDB and shows it as being sent; once A's
// browser reaches the server again, it is delivered, once, to B's page and to the history.
//
// Usage: node demo_outbox.mjs CONFIG_JSON
//   CONFIG_JSON: {"baseUrl", "tokenA", "tokenB", "roomId", "artifacts", "chromium"}
// Protocol with the caller: see demo_run.mjs (this driver asks nothing of it).
import { Run, chatSwitch, connected, sendText, snapshot, stored, waitFor } from "./demo_run.mjs";

const config = JSON.parse(process.argv[2]);
const { baseUrl, tokenA, tokenB, roomId, artifacts } = config;
const run = new Run({ artifacts, timeoutMs: 75000 });

const HELLO = "안녕! 연결돼 있을 때 (while connected)";
const OFFLINE = "서버에 닿지 않을 때 보낸 메시지 (sent while the server is out of reach)";
const AFTER = "Got it, exactly once.";

// The member's id: the token's subject (the page keeps A's outbox in "ieum-chat.<id>").
const subject = (token) => JSON.parse(Buffer.from(token.split(".")[1], "base64url").toString()).sub;

// The history as the server has it, read over REST by B (not through A's browser).
async function history() {
  const res = await fetch(`${baseUrl}/chat/rooms/${roomId}/messages?order=asc&limit=100`, {
    headers: { Authorization: `Bearer ${tokenB}` },
  });
  if (!res.ok) throw new Error(`history: ${res.status} ${await res.text()}`);
  return (await res.json()).messages.map((m) => ({ seq: m.seq, content: m.content, tempId: m.tempId }));
}

// A's way to the chat server: cut() refuses A's WebSockets (closing the open ones) and every
// HTTP request under /chat/ and /ws/chat/ (REST, SockJS); /demo and its scripts still load.
const chatRequests = (url) => url.pathname.startsWith("/chat/") || url.pathname.startsWith("/ws/chat/");

// A's outbox as the page's storage holds it (the SDK's IndexedDbStorage, read in the page).
const outbox = (page) =>
  page.evaluate(
    ([db, room]) => new IeumChat.IndexedDbStorage(db).listPending(room),
    [`ieum-chat.${subject(tokenA)}`, roomId],
  );

// Bubbles on a page with this text: [{seq, state, tempId}].
const bubbles = (page, text) =>
  page.evaluate(
    (t) => [...document.querySelectorAll("#messages li.msg")]
      .filter((li) => li.querySelector(".bubble").textContent === t)
      .map((li) => ({ seq: li.dataset.seq ? Number(li.dataset.seq) : null, state: li.dataset.state, tempId: li.dataset.tempId || null })),
    text,
  );

try {
  const browser = await run.launch(config.chromium);
  const result = { browser: browser.version() };
  const contextA = await browser.newContext({ viewport: { width: 390, height: 780 }, locale: "ko-KR" });
  const contextB = await browser.newContext({ viewport: { width: 412, height: 780 }, locale: "en-US" });
  const net = chatSwitch(contextA, chatRequests);
  await net.install;
  const a = run.watch("a", await contextA.newPage());
  const b = run.watch("b", await contextB.newPage());

  await run.step("both open the page; A says hello", async () => {
    await a.goto(`${baseUrl}/demo?token=${encodeURIComponent(tokenA)}`);
    await b.goto(`${baseUrl}/demo?token=${encodeURIComponent(tokenB)}`);
    await connected(a);
    await connected(b);
    await sendText(a, HELLO);
    await stored(a, HELLO);
    await stored(b, HELLO);
  });

  await run.step("A loses the server and sends a message: it waits in the outbox", async () => {
    run.outage = true;
    await net.cut();
    await waitFor(a, () => document.body.dataset.conn === "reconnecting");
    await sendText(a, OFFLINE);
    await waitFor(a, (t) => [...document.querySelectorAll("#messages li.msg")].some(
      (li) => li.dataset.state === "sending" && li.dataset.tempId && li.querySelector(".bubble").textContent === t), OFFLINE);
    // Written to IndexedDB before anything else: only then is a reload safe.
    await waitFor(a, async ([db, room, t]) => {
      const pending = await new IeumChat.IndexedDbStorage(db).listPending(room);
      return pending.some((p) => p.kind === "message" && p.body.content === t);
    }, [`ieum-chat.${subject(tokenA)}`, roomId, OFFLINE]);
    result.outboxBefore = await outbox(a);
    result.bubblesBefore = await bubbles(a, OFFLINE);
    await run.shot("00-sent-while-cut-off");
  });

  await run.step("A reloads the page, still cut off: the message is still there, being sent", async () => {
    await a.reload();
    // The page is a new document: its room from the last visit, its outbox from IndexedDB.
    await waitFor(a, (t) => [...document.querySelectorAll("#messages li.msg")].some(
      (li) => li.dataset.state === "sending" && li.querySelector(".bubble").textContent === t), OFFLINE);
    result.afterReload = {
      conn: await a.evaluate(() => document.body.dataset.conn),
      partner: await a.evaluate(() => document.getElementById("partner-name").textContent),
      presence: await a.evaluate(() => document.getElementById("presence").dataset.online),
      bubbles: await bubbles(a, OFFLINE),
      outbox: await outbox(a),
    };
    result.historyWhileCut = await history();
    result.onBWhileCut = await bubbles(b, OFFLINE);
    await run.shot("01-reloaded-while-cut-off");
  });

  await run.step("A reaches the server again: the message goes out, once", async () => {
    await net.restore();
    await connected(a);
    run.outage = false;
    await stored(a, OFFLINE);
    await stored(b, OFFLINE);
    await sendText(b, AFTER);
    await stored(a, AFTER);
    await waitFor(a, async ([db, room]) => (await new IeumChat.IndexedDbStorage(db).listPending(room)).length === 0,
      [`ieum-chat.${subject(tokenA)}`, roomId]);
    result.outboxAfter = await outbox(a);
    await run.shot("02-delivered");
  });

  await run.step("A reloads once more: the message is shown once, from the history", async () => {
    await a.reload();
    await connected(a);
    await stored(a, AFTER);
    result.historyAfter = await history();
  });

  await run.step("report", async () => {
    for (const [who, page] of Object.entries(run.pages)) {
      result[who] = { ...(await snapshot(page)), problems: page.problems, outageLog: page.outageLog.length };
    }
  });
  await run.finish(result);
} catch (err) {
  await run.fail(err);
}
