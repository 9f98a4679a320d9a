// What happens to a message after it is sent, on the demo page (/demo) in headless Chromium:
// A on a phone (touch: long press opens a bubble's menu), B at a desk (mouse: right click).
// Reactions and toggling one's own, an edit, replies and their quotes; then B's socket is cut
// while A unsends, edits again and reacts, and B's other device deletes a message for B: B's
// page (never reloaded) catches up by resuming from its stream position, and the reaction B
// queued meanwhile on the message A unsent comes back as an error. B deletes the tombstone for
// itself and reloads; last, B's tab is in the background and B's other device reads: the unread
// count of B's tab clears.
//
// Usage: node demo_lifecycle.mjs CONFIG_JSON
//   CONFIG_JSON: {"baseUrl", "tokenA", "tokenB", "roomId", "artifacts", "chromium"}
// Protocol with the caller: see demo_run.mjs (this driver asks nothing of it).
import { Run, chatSwitch, connected, sendText, settle, snapshot, stored, waitFor } from "./demo_run.mjs";

const config = JSON.parse(process.argv[2]);
const { baseUrl, tokenA, tokenB, roomId, artifacts } = config;
const run = new Run({ artifacts, timeoutMs: 75000 });

const UNSENT = "곧 취소할 메시지예요 (this one gets unsent)";
const EDITED = "저녁 7시에 만나요";
const EDITED_1 = "저녁 7시 반에 만나요 (fixed)";
const EDITED_2 = "저녁 8시에 만나요 (changed again)";
const REPLY = "OK, see you then!";
const REPLY_A = "이건 잘못 보냈어요 (about to unsend it)";
const HIDDEN = "B가 다른 기기에서 지울 메시지 (deleted on B's other device)";
const LAST = "읽었어요? (read on another device)";

const bubble = (text) => `#messages li.msg[data-seq]:has(> .row > .bubble:text-is("${text}"))`;
const byId = (id) => `#messages li.msg[data-id="${id}"]`;

// The member's REST calls from "another device" of theirs.
async function rest(token, method, path, body) {
  const res = await fetch(`${baseUrl}${path}`, {
    method,
    headers: { Authorization: `Bearer ${token}`, "Content-Type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (!res.ok) throw new Error(`${method} ${path}: ${res.status} ${await res.text()}`);
  return res.status === 204 ? null : res.json();
}

// B's connections pass through a switch: cut() closes B's WebSockets and refuses new ones, and
// SockJS's HTTP transports too (the page falls back to them when WebSockets fail), until
// restore(). B's REST calls still go through.
const sockjsRequests = /\/ws\/chat\//;

// A finger held on the bubble until its menu opens, then lifted (a long press, over CDP).
async function longPress(page, selector) {
  const box = await page.locator(`${selector} .bubble`).boundingBox();
  const point = { x: box.x + box.width / 2, y: box.y + box.height / 2 };
  const cdp = await page.context().newCDPSession(page);
  await cdp.send("Input.dispatchTouchEvent", { type: "touchStart", touchPoints: [point] });
  await page.waitForSelector("#menu-layer:not([hidden])", { timeout: 5000 });
  await cdp.send("Input.dispatchTouchEvent", { type: "touchEnd", touchPoints: [] });
  await cdp.detach();
}

async function rightClick(page, selector) {
  await page.click(`${selector} .bubble`, { button: "right" });
  await page.waitForSelector("#menu-layer:not([hidden])", { timeout: 5000 });
}

const idOf = (page, text) => page.locator(bubble(text)).getAttribute("data-id");

const chip = (page, id, emoji, count, mine) =>
  waitFor(
    page,
    ([id, emoji, count, mine]) => {
      const c = document.querySelector(`#messages li.msg[data-id="${id}"] .chip[data-emoji="${emoji}"]`);
      return c && Number(c.dataset.count) === count && (c.getAttribute("aria-pressed") === "true") === mine;
    },
    [id, emoji, count, mine],
  );

try {
  const browser = await run.launch(config.chromium);
  const result = { browser: browser.version() };

  const contextA = await browser.newContext({
    viewport: { width: 390, height: 780 }, locale: "ko-KR", isMobile: true, hasTouch: true,
  });
  const contextB = await browser.newContext({ viewport: { width: 412, height: 780 }, locale: "en-US" });
  // B's tab may be sent to the background (window.away): the page reads visibilityState.
  await contextB.addInitScript(() => {
    Object.defineProperty(document, "visibilityState", {
      configurable: true,
      get: () => (window.away ? "hidden" : "visible"),
    });
  });
  const wire = chatSwitch(contextB, sockjsRequests);
  await wire.install;
  const a = run.watch("a", await contextA.newPage());
  const b = run.watch("b", await contextB.newPage());
  let ids;

  await run.step("both open the page; A sends three messages", async () => {
    await a.goto(`${baseUrl}/demo?token=${encodeURIComponent(tokenA)}`);
    await b.goto(`${baseUrl}/demo?token=${encodeURIComponent(tokenB)}`);
    await connected(a);
    await connected(b);
    for (const text of [UNSENT, EDITED]) {
      await sendText(a, text);
      await stored(a, text);
      await stored(b, text);
    }
    ids = { unsent: await idOf(a, UNSENT), edited: await idOf(a, EDITED) };
  });

  await run.step("B reacts by right click; A's tap on the chip adds A's own", async () => {
    await rightClick(b, byId(ids.edited));
    result.menuB = await b.$$eval("#menu [data-action]", (items) => items.map((i) => i.dataset.action));
    result.paletteB = await b.$$eval("#menu .palette [data-emoji]", (items) => items.map((i) => i.dataset.emoji));
    await run.shot("00-menu");
    await b.click('#menu .react[data-emoji="❤️"]');
    await chip(a, ids.edited, "❤️", 1, false);
    await a.tap(`${byId(ids.edited)} .chip[data-emoji="❤️"]`);
    await chip(b, ids.edited, "❤️", 2, true);
    await chip(a, ids.edited, "❤️", 2, true);
    await run.shot("01-reactions");
  });

  await run.step("A edits by long press; B sees the edit", async () => {
    await longPress(a, byId(ids.edited));
    result.menuA = await a.$$eval("#menu [data-action]", (items) => items.map((i) => i.dataset.action));
    await run.shot("02-long-press-menu");
    await a.tap('#menu [data-action="edit"]');
    result.editBar = await a.evaluate(() => ({
      mode: document.getElementById("context-bar").dataset.mode,
      input: document.getElementById("input").value,
      send: document.getElementById("send").textContent,
    }));
    await a.fill("#input", EDITED_1);
    await a.press("#input", "Enter");
    for (const page of [a, b]) {
      await waitFor(page, ([id, t]) => {
        const li = document.querySelector(`#messages li.msg[data-id="${id}"]`);
        return li.querySelector(".bubble").textContent === t && li.dataset.edited === "true";
      }, [ids.edited, EDITED_1]);
    }
  });

  await run.step("B replies by right click, A by long press: the quote bar, then the quotes", async () => {
    await rightClick(b, byId(ids.edited));
    await b.click('#menu [data-action="reply"]');
    result.replyBar = await b.evaluate(() => ({
      mode: document.getElementById("context-bar").dataset.mode,
      title: document.getElementById("context-title").textContent,
      text: document.getElementById("context-text").textContent,
    }));
    await sendText(b, REPLY);
    await stored(a, REPLY);
    await stored(b, REPLY);
    ids.reply = await idOf(b, REPLY);
    result.barAfterReply = await b.evaluate(() => !document.getElementById("context-bar").hidden);
    await longPress(a, byId(ids.unsent));
    await a.tap('#menu [data-action="reply"]');
    await sendText(a, REPLY_A);
    await stored(a, REPLY_A);
    await stored(b, REPLY_A);
    ids.replyA = await idOf(a, REPLY_A);
    await run.shot("03-edited-and-replied");
  });

  await run.step("B's socket is cut: B queues a reaction, A unsends, edits, reacts", async () => {
    await b.evaluate(() => { window.sameDocument = true; }); // gone if the page reloads
    run.outage = true;
    await wire.cut();
    await waitFor(b, () => document.body.dataset.conn === "reconnecting");
    result.positionBeforeB = (await snapshot(b)).position;
    await rightClick(b, byId(ids.unsent));
    await b.click('#menu .react[data-emoji="😮"]'); // goes out when B is back: too late
    await longPress(a, byId(ids.unsent));
    await a.tap('#menu [data-action="unsend"]');
    await waitFor(a, (id) => document.querySelector(`#messages li.msg[data-id="${id}"]`).dataset.unsent === "true", ids.unsent);
    await longPress(a, byId(ids.edited));
    await a.tap('#menu [data-action="edit"]');
    await a.fill("#input", EDITED_2);
    await a.press("#input", "Enter");
    await waitFor(a, ([id, t]) => document.querySelector(`#messages li.msg[data-id="${id}"] .bubble`).textContent === t, [ids.edited, EDITED_2]);
    await longPress(a, byId(ids.reply));
    await a.tap('#menu .react[data-emoji="😂"]');
    await chip(a, ids.reply, "😂", 1, true);
    await sendText(a, HIDDEN);
    await stored(a, HIDDEN);
    ids.hidden = await idOf(a, HIDDEN);
    await rest(tokenB, "DELETE", `/chat/rooms/${roomId}/messages/${ids.hidden}`);
    await run.shot("04-b-offline");
  });

  await run.step("B is back: it resumes, and shows what changed meanwhile", async () => {
    await wire.restore();
    await connected(b);
    run.outage = false;
    await waitFor(b, (id) => document.querySelector(`#messages li.msg[data-id="${id}"]`).dataset.unsent === "true", ids.unsent);
    await waitFor(b, ([id, t]) => document.querySelector(`#messages li.msg[data-id="${id}"] .bubble`).textContent === t, [ids.edited, EDITED_2]);
    await chip(b, ids.reply, "😂", 1, false);
    await waitFor(b, () => /Could not react/.test(document.getElementById("toast").textContent));
    result.toastB = await b.evaluate(() => document.getElementById("toast").textContent);
    // B's read of A's reply, if the cut came before its mark went out, goes out on connect: an
    // entry of the stream too, so the pages have settled only once A shows the reply read.
    await waitFor(a, (id) => document.querySelector(`#messages li.msg[data-id="${id}"] .unread`).hidden, ids.replyA);
    result.position = await settle([a, b]);
    result.sameDocument = await b.evaluate(() => window.sameDocument === true);
    result.afterResume = { a: await snapshot(a), b: await snapshot(b) };
    await run.shot("05-b-resumed");
  });

  await run.step("B deletes the tombstone for itself, then reloads", async () => {
    await rightClick(b, byId(ids.unsent));
    result.tombstoneMenuB = await b.$$eval("#menu [data-action]", (items) => items.map((i) => i.dataset.action));
    result.tombstonePaletteB = await b.$$eval("#menu .palette", (items) => items.length);
    await b.click('#menu [data-action="delete"]');
    await waitFor(b, (id) => !document.querySelector(`#messages li.msg[data-id="${id}"]`), ids.unsent);
    await b.reload();
    await connected(b);
    await stored(b, REPLY);
    result.afterReload = await snapshot(b);
  });

  await run.step("B's tab is in the background; B reads on another device: the count clears", async () => {
    await b.evaluate(() => { window.away = true; document.dispatchEvent(new Event("visibilitychange")); });
    await sendText(a, LAST);
    await stored(a, LAST);
    await stored(b, LAST);
    await waitFor(b, () => document.body.dataset.unread === "1");
    result.titleAway = await b.title();
    const last = await a.locator(bubble(LAST)).getAttribute("data-seq");
    await rest(tokenB, "POST", `/chat/rooms/${roomId}/read`, { upToSeq: Number(last) });
    await waitFor(b, () => document.body.dataset.unread === "0");
    await waitFor(a, (seq) => document.querySelector(`#messages li.msg[data-seq="${seq}"] .unread`).hidden, last);
    result.titleRead = await b.title();
    await run.shot("06-read-elsewhere");
  });

  await run.step("report", async () => {
    result.ids = ids;
    result.finalPosition = await settle([a, b]);
    for (const [who, page] of Object.entries(run.pages)) {
      result[who] = { ...(await snapshot(page)), problems: page.problems };
    }
  });
  await run.finish(result);
} catch (err) {
  await run.fail(err);
}
