// The browser bundle (dist/ieum-chat.min.js) defines the global IeumChat with the whole API,
// runs without the package's dependencies installed beside it (they are inside), and chats.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, test } from "node:test";
import vm from "node:vm";
import WebSocket from "ws";

import * as esm from "../dist/index.mjs";
import { ChatServer, packageRoot, waitFor, within } from "./support.mjs";

let server;
before(async () => {
  server = new ChatServer();
  await server.start();
});
after(async () => {
  await server?.dispose();
});

function loadBundle() {
  // A page's globals: no require, no module system; WebSocket and fetch as a browser has them.
  const context = {
    WebSocket,
    fetch,
    setTimeout,
    clearTimeout,
    setInterval,
    clearInterval,
    TextEncoder,
    TextDecoder,
    URLSearchParams,
    crypto: globalThis.crypto,
    console,
    location: { protocol: "http:", host: "127.0.0.1", href: "http://127.0.0.1/" },
    navigator: { userAgent: "test" },
  };
  context.window = context;
  context.self = context;
  vm.createContext(context);
  vm.runInContext(readFileSync(join(packageRoot, "dist/ieum-chat.min.js"), "utf8"), context);
  return context.IeumChat;
}

test("window.IeumChat has every export of the package", () => {
  const IeumChat = loadBundle();
  assert.equal(typeof IeumChat, "object");
  assert.deepEqual(Object.keys(IeumChat).sort(), Object.keys(esm).sort());
  for (const name of ["ChatClient", "ChatApi", "ChatError", "SendError", "HttpError", "IndexedDbStorage", "MemoryStorage"]) {
    assert.equal(typeof IeumChat[name], "function", name);
  }
});

test("the bundle's client sends and receives", async () => {
  const IeumChat = loadBundle();
  const { coupleId, a, b } = await server.couple();
  const ca = new IeumChat.ChatClient({ baseUrl: server.url, token: a.token, coupleId, storage: new IeumChat.MemoryStorage() });
  const cb = new esm.ChatClient({ baseUrl: server.url, token: b.token, coupleId, webSocket: WebSocket, storage: new esm.MemoryStorage() });
  const got = [];
  ca.on("message", (m) => got.push(m.content));
  try {
    await within(Promise.all([ca.start(), cb.start()]), "both clients to connect");
    assert.equal(ca.transport, "websocket");
    const mine = await within(ca.sendText("from the bundle"), "the bundle's send");
    assert.equal(mine.content, "from the bundle");
    await within(cb.sendText("to the bundle"), "the answer");
    await waitFor(() => got.includes("to the bundle"), "the bundle's client to receive the answer");
    assert.deepEqual(got, ["from the bundle", "to the bundle"]);
  } finally {
    await ca.stop();
    await cb.stop();
  }
});
