// Both members of a couple use the demo page (/demo) in headless Chromium, driven by
// playwright-core: history and scroll-back, text and an image, the unread "1" clearing when the
// partner reads, typing, presence, and a server restart that both pages survive with nothing lost.
//
// Usage: node demo_page.mjs CONFIG_JSON
//   CONFIG_JSON: {"baseUrl", "tokenA", "tokenB", "history", "image", "artifacts", "mode",
//                 "chromium", "restText"}; restText: a message the caller posts over REST while
//                 the pages are still reconnecting (it must reach both). mode: "websocket"
//                 (the page's default), or a SockJS transport name (e.g. "xhr-streaming"): A's
//                 browser has no WebSocket (an init script removes it) and its page gets
//                 &transport=MODE; B's browser has WebSocket but every connection is refused
//                 (a proxy that breaks WebSocket), and its page must fall back to SockJS alone.
// Talks to the caller in JSON lines on stdout: {"event":"stop-server"} and
// {"event":"start-server"} wait for one line on stdin (the caller did it); the last line is
// {"event":"result",...} or {"event":"error",...} (exit status 1).
import { Run, connected, sendText, settle, snapshot, stored, waitFor } from "./demo_run.mjs";

const config = JSON.parse(process.argv[2]);
const { baseUrl, tokenA, tokenB, history, image, artifacts, mode } = config;
const run = new Run({ artifacts, timeoutMs: 75000 });

// Without WebSocket, A's page is told the transport (&transport=...), while B's page finds out
// by itself that it must fall back to SockJS (whose websocket transport is refused as well, so
// it settles on the first streaming one, the same).
const url = (token, forced) =>
  `${baseUrl}/demo?token=${encodeURIComponent(token)}` +
  (forced && mode !== "websocket" ? `&transport=${encodeURIComponent(mode)}` : "");

async function openMember(who, token, forced, options) {
  const context = await run.browser.newContext({ viewport: { width: 390, height: 780 }, ...options });
  if (mode !== "websocket" && forced) {
    await context.addInitScript(() => { window.WebSocket = undefined; });
  } else if (mode !== "websocket") {
    await context.routeWebSocket(/.*/, (ws) => ws.close()); // never reaches the server
  }
  const page = run.watch(who, await context.newPage());
  await page.goto(url(token, forced));
  await connected(page);
  return page;
}

const A_TEXT = "안녕하세요! 오늘 저녁 같이 먹을래요? (Dinner tonight?)";
const B_TEXT = "Sure! 좋아요, 7시에 봐요 :)";
const A_OFFLINE = "서버가 재시작되는 동안 보낸 메시지 (sent while the server restarts)";
const B_AFTER = "다시 연결됐어요. Reconnected, nothing lost.";

try {
  const browser = await run.launch(config.chromium);
  const result = { mode, browser: browser.version() };

  let a;
  await run.step("A opens the page and scrolls back through the history", async () => {
    a = await openMember("a", tokenA, true, { locale: "ko-KR", isMobile: true, hasTouch: true });
    const first = await snapshot(a);
    result.firstPage = first.messages.length;
    // Scroll to the top until every stored message is there (the seq cursor, page by page).
    for (let i = 0; i < 10; i++) {
      const count = await a.evaluate(() => document.querySelectorAll("#messages li.msg[data-seq]").length);
      if (count >= history) break;
      await a.evaluate(() => { document.getElementById("scroller").scrollTop = 0; });
      await waitFor(a, (n) => document.querySelectorAll("#messages li.msg[data-seq]").length > n, count);
    }
    const all = await snapshot(a);
    result.historyA = all.messages.map((m) => m.seq);
    result.partnerOnlineBefore = all.online;
    result.langA = all.lang;
    await a.evaluate(() => { document.getElementById("scroller").scrollTop = 0; });
    await run.shot("00-history-top");
    await a.evaluate(() => { const s = document.getElementById("scroller"); s.scrollTop = s.scrollHeight; });
  });

  await run.step("A sends text and an image while B is away: both stay unread", async () => {
    await sendText(a, A_TEXT);
    await stored(a, A_TEXT);
    await a.setInputFiles("#file", image);
    await waitFor(a, () => [...document.querySelectorAll('#messages li.msg[data-type="IMAGE"]')].some(
      (li) => li.dataset.seq && li.dataset.state === "sent" && li.querySelector("img").naturalWidth > 0));
    // A file that is not the picture it claims to be: the upload is refused, the bubble says
    // "failed" and offers a retry.
    await a.setInputFiles("#file", { name: "broken.png", mimeType: "image/png", buffer: Buffer.from("not a picture") });
    await waitFor(a, () => [...document.querySelectorAll("#messages li.msg")].some(
      (li) => li.dataset.state === "failed" && li.querySelector("button.retry")));
    await a.waitForTimeout(300); // let the last image paint
    const snap = await snapshot(a);
    result.aSentUnread = snap.messages.filter((m) => m.mine && m.seq > history).map((m) => m.unread);
    await run.shot("01-a-sent-unread");
  });

  let b;
  await run.step("B opens the page, receives both, and reading clears A's 1s", async () => {
    b = await openMember("b", tokenB, false, { locale: "en-US", viewport: { width: 412, height: 780 } });
    await stored(b, A_TEXT);
    await waitFor(b, () => [...document.querySelectorAll('#messages li.msg[data-type="IMAGE"]')].some(
      (li) => li.querySelector("img").complete && li.querySelector("img").naturalWidth > 0));
    await waitFor(a, () => [...document.querySelectorAll("#messages li.msg.mine .unread")].every((u) => u.hidden));
    await waitFor(a, () => document.getElementById("presence").dataset.online === "true");
    await waitFor(b, () => document.getElementById("presence").dataset.online === "true");
    const snapB = await snapshot(b);
    result.langB = snapB.lang;
    result.bAtBottom = snapB.atBottom; // the history opens at its end, image loaded and all
    result.bImage = snapB.messages.find((m) => m.type === "IMAGE").image;
    result.aUnreadAfterRead = (await snapshot(a)).messages.filter((m) => m.mine && m.unread).length;
    await run.shot("02-read");
  });

  await run.step("B types: A sees the typing indicator; B's reply arrives and A reads it", async () => {
    await b.click("#input");
    await b.keyboard.type("Sure! 좋아", { delay: 20 });
    await waitFor(a, () => !document.getElementById("typing").hidden);
    result.typingShown = true;
    await run.shot("03-typing");
    await b.fill("#input", B_TEXT);
    await b.press("#input", "Enter");
    await stored(a, B_TEXT);
    await waitFor(a, () => document.getElementById("typing").hidden);
    await waitFor(b, () => [...document.querySelectorAll("#messages li.msg.mine .unread")].every((u) => u.hidden));
    result.transportsBefore = [(await snapshot(a)).transport, (await snapshot(b)).transport];
  });

  await run.step("the server stops: both pages show the banner; A writes anyway", async () => {
    run.outage = true;
    await run.ask("stop-server");
    for (const page of [a, b]) {
      await waitFor(page, () => document.body.dataset.conn === "reconnecting" && !document.getElementById("banner").hidden);
    }
    await sendText(a, A_OFFLINE);
    await waitFor(a, (t) => [...document.querySelectorAll("#messages li.msg")].some(
      (li) => li.dataset.state === "sending" && li.querySelector(".bubble").textContent === t), A_OFFLINE);
    await run.shot("04-server-down");
  });

  await run.step("the server is back: both reconnect, resume, and the pending message goes out", async () => {
    await run.ask("start-server");
    for (const page of [a, b]) await connected(page);
    run.outage = false;
    await stored(a, config.restText);
    await stored(b, config.restText);
    await stored(a, A_OFFLINE);
    await stored(b, A_OFFLINE);
    await sendText(b, B_AFTER);
    await stored(a, B_AFTER);
    await stored(b, B_AFTER);
    for (const page of [a, b]) {
      await waitFor(page, () => document.getElementById("banner").hidden);
    }
    await waitFor(a, () => [...document.querySelectorAll("#messages li.msg.mine .unread")].every((u) => u.hidden));
    await waitFor(b, () => [...document.querySelectorAll("#messages li.msg.mine .unread")].every((u) => u.hidden));
    await b.waitForTimeout(300);
    await run.shot("05-after-restart");
  });

  await run.step("report", async () => {
    await settle([a, b]); // the last read receipts reach both pages
    for (const [who, page] of Object.entries(run.pages)) {
      const snap = await snapshot(page);
      result[who] = { ...snap, problems: page.problems, outageLog: page.outageLog.length };
    }
  });
  await run.finish(result);
} catch (err) {
  await run.fail(err);
}
