// A small Chrome DevTools Protocol client over one WebSocket, for a Chromium this script
// starts itself. Playwright keeps every page it drives "visible" (it turns on focus
// emulation, which holds the page as if captured), so a test of what a page does while
// hidden talks to the browser directly: then a tab opened in front of it really hides it.
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import WebSocket from "ws";

export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

export class Browser {
  static async launch(executablePath) {
    const profile = mkdtempSync(join(tmpdir(), "ieum-chat-cdp-"));
    const proc = spawn(
      executablePath,
      [
        "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-component-update", "--disable-sync", "--remote-debugging-port=0",
        `--user-data-dir=${profile}`, "--window-size=390,780", "about:blank",
      ],
      { stdio: ["ignore", "ignore", "pipe"] },
    );
    const endpoint = await new Promise((resolve, reject) => {
      let seen = "";
      proc.stderr.on("data", (chunk) => {
        seen += chunk;
        const found = seen.match(/DevTools listening on (ws:\/\/\S+)/);
        if (found) resolve(found[1]);
      });
      proc.on("exit", (code) => reject(new Error(`chromium exited (${code}): ${seen.slice(-2000)}`)));
    });
    const ws = new WebSocket(endpoint, { perMessageDeflate: false });
    await new Promise((resolve, reject) => {
      ws.once("open", resolve);
      ws.once("error", reject);
    });
    return new Browser(proc, ws, profile);
  }

  constructor(proc, ws, profile) {
    this.proc = proc;
    this.ws = ws;
    this.profile = profile;
    this.nextId = 0;
    this.calls = new Map();
    this.listeners = []; // [sessionId, method, callback]
    ws.on("message", (data) => this.onMessage(JSON.parse(data)));
    // A call the browser can no longer answer fails; left pending, it would let node end the
    // script with status 13 (a top-level await nothing can settle).
    ws.on("close", () => {
      for (const call of this.calls.values()) call.reject(new Error(`${call.method}: the browser is gone`));
      this.calls.clear();
    });
  }

  onMessage(message) {
    if (message.id !== undefined) {
      const call = this.calls.get(message.id);
      this.calls.delete(message.id);
      if (!call) return;
      if (message.error) call.reject(new Error(`${call.method}: ${message.error.message}`));
      else call.resolve(message.result);
      return;
    }
    for (const [sessionId, method, callback] of this.listeners) {
      if (method === message.method && sessionId === message.sessionId) callback(message.params);
    }
  }

  send(method, params = {}, sessionId = undefined) {
    if (this.ws.readyState !== WebSocket.OPEN) {
      return Promise.reject(new Error(`${method}: the browser is gone`));
    }
    const id = ++this.nextId;
    return new Promise((resolve, reject) => {
      this.calls.set(id, { resolve, reject, method });
      this.ws.send(JSON.stringify({ id, method, params, sessionId }));
    });
  }

  on(sessionId, method, callback) {
    this.listeners.push([sessionId, method, callback]);
  }

  async version() {
    return (await this.send("Browser.getVersion")).product;
  }

  // The page Chromium opened at start, attached.
  async firstPage() {
    const { targetInfos } = await this.send("Target.getTargets");
    const target = targetInfos.find((t) => t.type === "page");
    return this.attach(target.targetId);
  }

  async attach(targetId) {
    const { sessionId } = await this.send("Target.attachToTarget", { targetId, flatten: true });
    const page = new Page(this, targetId, sessionId);
    await page.init();
    return page;
  }

  // A new tab in the same window, in front: the tabs behind it are hidden.
  async openTab(url) {
    const { targetId } = await this.send("Target.createTarget", { url, newWindow: false });
    return targetId;
  }

  async closeTab(targetId) {
    await this.send("Target.closeTarget", { targetId });
  }

  async close() {
    // Listen before killing; a browser gone already (an exit code, or killed by a signal,
    // which leaves exitCode null) has nothing more to wait for. The wait is bounded by a
    // timer: a promise nothing can settle would let node end the script with status 13.
    const proc = this.proc;
    const exited =
      proc.exitCode !== null || proc.signalCode !== null
        ? Promise.resolve()
        : new Promise((resolve) => proc.once("exit", resolve));
    this.ws.close();
    proc.kill();
    if ((await Promise.race([exited.then(() => true), sleep(5000).then(() => false)])) === false) {
      proc.kill("SIGKILL"); // a busy machine: Chromium did not stop on SIGTERM in 5 s
      await Promise.race([exited, sleep(5000)]);
    }
    // The profile is a temporary folder: a browser still writing into it must not fail a run.
    try {
      rmSync(this.profile, { recursive: true, force: true, maxRetries: 3 });
    } catch (_) {
      // left in the temporary directory
    }
  }
}

export class Page {
  constructor(browser, targetId, sessionId) {
    this.browser = browser;
    this.targetId = targetId;
    this.sessionId = sessionId;
    this.problems = []; // script errors and console errors
    this.framesSent = []; // text of every WebSocket frame the page sent
  }

  async init() {
    const on = (method, callback) => this.browser.on(this.sessionId, method, callback);
    on("Runtime.exceptionThrown", ({ exceptionDetails }) =>
      this.problems.push(`pageerror: ${exceptionDetails.exception?.description || exceptionDetails.text}`));
    on("Runtime.consoleAPICalled", ({ type, args }) => {
      if (type === "error") this.problems.push(`console: ${args.map((a) => a.value ?? a.description).join(" ")}`);
    });
    on("Network.webSocketFrameSent", ({ response }) => this.framesSent.push(response.payloadData));
    for (const domain of ["Page", "Runtime", "Network"]) await this.send(`${domain}.enable`);
  }

  send(method, params) {
    return this.browser.send(method, params, this.sessionId);
  }

  async goto(url) {
    const loaded = new Promise((resolve) => this.browser.on(this.sessionId, "Page.loadEventFired", resolve));
    await this.send("Page.navigate", { url });
    await loaded;
  }

  async reload() {
    const loaded = new Promise((resolve) => this.browser.on(this.sessionId, "Page.loadEventFired", resolve));
    await this.send("Page.reload", {});
    await loaded;
  }

  // The value of `expression` (awaited when it is a promise), as JSON.
  async evaluate(expression) {
    const { result, exceptionDetails } = await this.send("Runtime.evaluate", {
      expression,
      awaitPromise: true,
      returnByValue: true,
    });
    if (exceptionDetails) throw new Error(`evaluate: ${exceptionDetails.exception?.description || exceptionDetails.text}`);
    return result.value;
  }

  // Until `expression` is truthy (polled: a hidden page gets no animation frames).
  async waitFor(expression, timeoutMs, what = expression) {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const value = await this.evaluate(expression);
      if (value) return value;
      if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
      await sleep(100);
    }
  }

  async screenshot(path) {
    const { data } = await this.send("Page.captureScreenshot", { format: "png" });
    writeFileSync(path, Buffer.from(data, "base64"));
  }
}
