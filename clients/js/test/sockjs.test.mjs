// SockJS when the WebSocket cannot open: a proxy in front of the server that refuses every
// WebSocket upgrade (as some corporate proxies do) and forwards plain HTTP, so sockjs-client's
// xhr transports work through it.
import assert from "node:assert/strict";
import { request as httpRequest, createServer } from "node:http";
import { after, before, test } from "node:test";
import WebSocket from "ws";

import { ChatClient, MemoryStorage } from "../dist/index.mjs";
import { ChatServer, record, waitFor, within } from "./support.mjs";

let server;
let proxy;
let proxyUrl;
const refused = [];
const clients = [];

before(async () => {
  server = new ChatServer();
  await server.start();
  proxy = createServer((req, res) => {
    const upstream = httpRequest(
      { host: "127.0.0.1", port: server.port, method: req.method, path: req.url, headers: req.headers },
      (answer) => {
        res.writeHead(answer.statusCode ?? 502, answer.headers);
        answer.pipe(res);
      },
    );
    upstream.on("error", () => res.destroy());
    req.pipe(upstream);
  });
  proxy.on("upgrade", (req, socket) => {
    refused.push(req.url);
    socket.end("HTTP/1.1 403 Forbidden\r\nConnection: close\r\nContent-Length: 0\r\n\r\n");
  });
  await new Promise((r) => proxy.listen(0, "127.0.0.1", r));
  proxyUrl = `http://127.0.0.1:${proxy.address().port}`;
});

after(async () => {
  for (const c of clients) await c.stop();
  if (proxy) {
    proxy.closeAllConnections?.();
    await new Promise((r) => proxy.close(r));
  }
  await server?.dispose();
});

test("the client falls back to SockJS when the WebSocket is refused, and a message round-trips", async () => {
  const { coupleId, a, b } = await server.couple();
  const ca = new ChatClient({ baseUrl: proxyUrl, token: a.token, coupleId, webSocket: WebSocket, storage: new MemoryStorage() });
  const cb = new ChatClient({ baseUrl: server.url, token: b.token, coupleId, webSocket: WebSocket, storage: new MemoryStorage() });
  clients.push(ca, cb);
  const seenA = record(ca);
  const seenB = record(cb);
  await within(Promise.all([ca.start(), cb.start()]), "both clients to connect", 30_000);

  assert.equal(ca.transport, "sockjs");
  assert.match(ca.sockjsTransport ?? "", /^xhr-/);
  assert.equal(cb.transport, "websocket");
  assert.equal(cb.sockjsTransport, null);
  assert.ok(refused.includes("/ws/chat"), `the proxy refused the WebSocket (${refused.join(", ")})`);
  assert.equal(ca.stats.fallbacks, 1);
  // SockJS tried its own websocket transport too, then went on over xhr
  assert.ok(refused.some((u) => /^\/ws\/chat\/[^/]+\/[^/]+\/websocket$/.test(u)), `SockJS's websocket refused too (${refused.join(", ")})`);

  const mine = await within(ca.sendText("through SockJS"), "A's send over SockJS");
  await waitFor(() => seenB.message.some((m) => m.id === mine.id), "B to receive it");
  const theirs = await within(cb.sendText("back over WebSocket"), "B's answer");
  await waitFor(() => seenA.message.some((m) => m.id === theirs.id), "A to receive B's answer over SockJS");
  assert.deepEqual(seenA.message.map((m) => m.content), ["through SockJS", "back over WebSocket"]);
  assert.ok(seenA.state.some((s) => s.state === "connected" && s.transport === "sockjs"));
});

test("transport: sockjs connects through SockJS alone", async () => {
  const { coupleId, a } = await server.couple();
  const ca = new ChatClient({ baseUrl: server.url, token: a.token, coupleId, transport: "sockjs", storage: new MemoryStorage() });
  clients.push(ca);
  await within(ca.start(), "A to connect over SockJS", 30_000);
  assert.equal(ca.transport, "sockjs");
  const sent = await within(ca.sendText("sockjs only"), "A's send");
  assert.equal(sent.content, "sockjs only");
});
