// What the demo page drivers (demo_page.mjs, demo_lifecycle.mjs, ...) share: the JSON-lines
// talk with the Python test, steps with screenshots, headless Chromium, cutting a browser off
// the chat server, and reading the page's state from its DOM (see the header of
// src/ieum_chat/demo/static/app.js).
//
// The driver talks to its caller in JSON lines on stdout: an {"event": NAME} line from
// run.ask(NAME) waits for one line on stdin (the caller did it); the last line is
// {"event":"result",...} (exit status 0) or {"event":"error",...} (exit status 1).
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { chromium } from "playwright-core";

export const STEP_TIMEOUT = 12000;

export class Run {
  constructor({ artifacts, timeoutMs }) {
    this.artifacts = artifacts;
    this.screenshots = [];
    this.pages = {}; // who -> page, each with .problems and .outageLog
    this.currentStep = "launch";
    this.outage = false; // refused connections are expected meanwhile (not problems)
    this.browser = null;
    this.stdin = createInterface({ input: process.stdin })[Symbol.asyncIterator]();
    this.deadline = setTimeout(() => this.fail(new Error("the whole run took too long")), timeoutMs);
    mkdirSync(artifacts, { recursive: true });
  }

  emit(event) {
    process.stdout.write(JSON.stringify(event) + "\n");
  }

  async ask(event, fields) {
    this.emit({ event, ...fields });
    const line = await this.stdin.next();
    if (line.done) throw new Error(`no answer to ${event}`);
  }

  // `extraArgs`: more Chromium switches (a fake microphone, autoplay without a gesture).
  async launch(executablePath, extraArgs = []) {
    this.browser = await chromium.launch({
      executablePath,
      args: [
        "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        ...extraArgs,
      ],
    });
    return this.browser;
  }

  // Record the page's script errors (and console errors, but refused connections during an
  // outage) as its problems.
  watch(who, page) {
    page.problems = [];
    page.outageLog = [];
    page.on("pageerror", (err) => page.problems.push(`pageerror: ${err.message}`));
    page.on("console", (msg) => {
      if (msg.type() !== "error") return;
      const network = /net::ERR_|Failed to load resource/.test(msg.text());
      (this.outage && network ? page.outageLog : page.problems).push(`console: ${msg.text()}`);
    });
    this.pages[who] = page;
    return page;
  }

  async shot(name) {
    for (const [who, page] of Object.entries(this.pages)) {
      if (page.isClosed()) continue;
      const path = join(this.artifacts, `${name}-${who}.png`);
      await page.screenshot({ path });
      this.screenshots.push(path);
    }
  }

  async step(name, body) {
    this.currentStep = name;
    await body();
  }

  async fail(err) {
    const problems = {};
    for (const [who, page] of Object.entries(this.pages)) problems[who] = page.problems;
    try {
      await this.shot(`error-${this.currentStep.replace(/\W+/g, "-")}`);
    } catch (_) {
      // the page may be gone
    }
    const message = String((err && err.stack) || err);
    this.emit({ event: "error", step: this.currentStep, message, problems, screenshots: this.screenshots });
    process.exit(1);
  }

  async finish(result) {
    await this.browser.close();
    clearTimeout(this.deadline);
    this.emit({ event: "result", ...result, screenshots: this.screenshots });
    process.exit(0);
  }
}

// A browser context's way to the chat server, through a switch: cut() closes its open
// WebSockets to /ws/chat and refuses new ones, and refuses the HTTP requests `http` (a
// Playwright URL matcher) matches, until restore(). Await `install` before opening a page.
export function chatSwitch(context, http) {
  const open = new Set();
  let online = true;
  const refuse = (route) => route.abort("connectionrefused");
  const install = context.routeWebSocket(/\/ws\/chat/, (ws) => {
    if (!online) {
      ws.close();
      return;
    }
    ws.connectToServer();
    open.add(ws);
    ws.onClose(() => open.delete(ws));
  });
  return {
    install,
    async cut() {
      online = false;
      await context.route(http, refuse);
      for (const ws of [...open]) await ws.close();
      open.clear();
    },
    async restore() {
      online = true;
      await context.unroute(http, refuse);
    },
  };
}

export const waitFor = (page, fn, arg) => page.waitForFunction(fn, arg, { timeout: STEP_TIMEOUT });

export const connected = (page) =>
  page.waitForSelector('body[data-conn="connected"]', { timeout: STEP_TIMEOUT });

// What a page shows: every message in order, what became of each, and the chrome around them.
export const snapshot = (page) =>
  page.evaluate(() => ({
    conn: document.body.dataset.conn,
    position: document.body.dataset.seq ? Number(document.body.dataset.seq) : null,
    gaps: Number(document.body.dataset.gaps || 0),
    unreadByMe: Number(document.body.dataset.unread || 0),
    title: document.title,
    transport: document.getElementById("transport").dataset.transport,
    online: document.getElementById("presence").dataset.online,
    banner: !document.getElementById("banner").hidden,
    toast: document.getElementById("toast").hidden ? null : document.getElementById("toast").textContent,
    typing: !document.getElementById("typing").hidden,
    lang: document.documentElement.lang,
    atBottom: (() => {
      const s = document.getElementById("scroller");
      return s.scrollHeight - s.scrollTop - s.clientHeight < 2;
    })(),
    messages: [...document.querySelectorAll("#messages li.msg")].map((li) => {
      const img = li.querySelector("img");
      const quote = li.querySelector(".quote");
      const edited = li.querySelector(".edited");
      return {
        seq: li.dataset.seq ? Number(li.dataset.seq) : null,
        id: li.dataset.id || null,
        tempId: li.dataset.tempId || null,
        state: li.dataset.state,
        type: li.dataset.type,
        mine: li.classList.contains("mine"),
        unread: !li.querySelector(".unread").hidden,
        text: li.querySelector(".bubble").textContent,
        unsent: li.dataset.unsent === "true",
        edited: edited.hidden ? null : edited.textContent,
        quote: quote
          ? {
            replyTo: quote.dataset.replyTo,
            name: quote.querySelector(".quote-name").textContent,
            text: quote.querySelector(".quote-text").textContent,
          }
          : null,
        reactions: [...li.querySelectorAll(".reactions .chip")].map((chip) => ({
          emoji: chip.dataset.emoji,
          count: Number(chip.dataset.count),
          mine: chip.getAttribute("aria-pressed") === "true",
        })),
        image: img ? { src: img.src, width: img.naturalWidth, complete: img.complete } : null,
      };
    }),
  }));

// The bubble with this text, once the server has stored it (it has a seq) and it is "sent".
export const stored = (page, text) =>
  waitFor(
    page,
    (t) => [...document.querySelectorAll("#messages li.msg[data-seq]")].some(
      (li) => li.dataset.state === "sent" && li.querySelector(".bubble").textContent === t,
    ),
    text,
  );

export async function sendText(page, text) {
  await page.fill("#input", text);
  await page.press("#input", "Enter");
}

// Until every page has reached the furthest stream position any of them shows.
export async function settle(pages) {
  for (;;) {
    const positions = await Promise.all(pages.map((p) => p.evaluate(() => Number(document.body.dataset.seq || 0))));
    const furthest = Math.max(...positions);
    if (positions.every((p) => p === furthest)) return furthest;
    for (const page of pages) {
      await waitFor(page, (n) => Number(document.body.dataset.seq || 0) >= n, furthest);
    }
  }
}
