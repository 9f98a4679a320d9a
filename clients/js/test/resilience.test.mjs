// What survives: a server restart (resume by seq), a reload with a send pending while the
// server is down (the outbox in storage), and short-lived tokens (reconnect with a fresh one).
import assert from "node:assert/strict";
import { after, afterEach, test } from "node:test";
import WebSocket from "ws";

import { ChatApi, ChatClient, MemoryStorage } from "../dist/index.mjs";
import { createHmac } from "node:crypto";

import { ChatServer, JWT_SECRET, mintToken, record, streamSeqs, waitFor, within } from "./support.mjs";

const servers = [];
let clients = [];

function client(server, member, options = {}) {
  const c = new ChatClient({
    baseUrl: server.url,
    token: member.token,
    webSocket: WebSocket,
    backoff: { initialMs: 100, maxMs: 1000 },
    ...options,
  });
  clients.push(c);
  return c;
}

async function newServer() {
  const server = new ChatServer();
  servers.push(server);
  return server.start();
}

afterEach(async () => {
  for (const c of clients) await c.stop();
  clients = [];
});

after(async () => {
  for (const s of servers) await s.dispose();
});

test("resume after the server restarts: what the partner sent meanwhile arrives once, in order", async () => {
  const server = await newServer();
  const { coupleId, a, b } = await server.couple();
  const storage = new MemoryStorage();
  // A comes back slowly, so that B's messages are sent while it is away.
  const ca = client(server, a, { coupleId, storage, backoff: { initialMs: 1500, maxMs: 2500 } });
  const seenA = record(ca);
  await within(ca.start(), "A to connect");
  const api = new ChatApi({ baseUrl: server.url, token: b.token });
  await api.send(coupleId, { type: "TEXT", content: "before", tempId: "before-1" });
  await waitFor(() => seenA.message.length === 1, "A to receive the first message");

  await server.stop("SIGKILL");
  await waitFor(() => ca.state === "reconnecting", "A to notice the server is gone");
  // At least one attempt fails while the server is down: a WebSocket that cannot open
  // because nothing listens is no reason to give up WebSocket for SockJS.
  await waitFor(() => seenA.state.filter((s) => s.state === "reconnecting").length >= 2, "a failed attempt", 30_000);
  await server.start();
  const meanwhile = [];
  for (let i = 1; i <= 5; i++) {
    meanwhile.push(await api.send(coupleId, { type: "TEXT", content: `meanwhile ${i}`, tempId: `mw-${i}` }));
  }
  await waitFor(() => seenA.message.length === 6, "A to receive what was sent while it was away", 30_000);
  await within(api.send(coupleId, { type: "TEXT", content: "live", tempId: "live-1" }), "a live message");
  await waitFor(() => seenA.message.length === 7, "A to receive the live message");

  assert.deepEqual(
    seenA.message.map((m) => m.content),
    ["before", "meanwhile 1", "meanwhile 2", "meanwhile 3", "meanwhile 4", "meanwhile 5", "live"],
  );
  assert.deepEqual(seenA.message.slice(1, 6).map((m) => m.id), meanwhile.map((m) => m.id));
  const seqs = streamSeqs(seenA);
  assert.deepEqual(seqs, [...seqs].sort((x, y) => x - y));
  assert.equal(new Set(seqs).size, seqs.length);
  assert.equal(ca.stats.connects, 2);
  assert.equal(ca.transport, "websocket");
  assert.equal(ca.stats.fallbacks, 0);
  assert.ok(seenA.state.some((s) => s.state === "reconnecting" && typeof s.retryInMs === "number"));
  await waitFor(async () => (await storage.getLastSeq(coupleId)) === ca.lastSeq, "the last seq to be stored");
});

test("the outbox survives a reload: a send pending while the server is down is delivered once by the next client", async () => {
  const server = await newServer();
  const { coupleId, a, b } = await server.couple();
  const storage = new MemoryStorage();
  const first = client(server, a, { coupleId, storage });
  await within(first.start(), "the first client to connect");

  await server.stop("SIGKILL");
  await waitFor(() => first.state === "reconnecting", "the first client to notice the server is gone");
  const pendingSend = first.sendText("sent while offline");
  const outcome = pendingSend.then(() => "resolved", (e) => e.code);
  await waitFor(async () => (await first.pending()).length === 1, "the send to be in storage");
  const [stored] = await first.pending();
  assert.equal(stored.kind, "message");
  assert.equal(stored.body.content, "sent while offline");
  assert.equal(stored.body.tempId, stored.tempId);
  await first.stop(); // the page is closed: the send is still pending
  assert.equal(await outcome, "CLIENT_CLOSED");
  assert.equal(first.state, "closed");
  assert.deepEqual((await storage.listPending(coupleId)).map((p) => p.tempId), [stored.tempId]);

  await server.start();
  const cb = client(server, b, { coupleId, storage: new MemoryStorage(), resumeAfterSeq: 0 });
  const seenB = record(cb);
  await within(cb.start(), "B to connect");
  const second = client(server, a, { coupleId, storage });
  const seenSecond = record(second);
  assert.deepEqual((await second.pending()).map((p) => p.tempId), [stored.tempId]);
  await within(second.start(), "the second client to connect");
  await waitFor(() => seenSecond.sent.some((s) => s.tempId === stored.tempId), "the pending send to be acknowledged");
  await waitFor(() => seenB.message.some((m) => m.tempId === stored.tempId), "B to receive it");
  assert.equal(seenSecond.sent.find((s) => s.tempId === stored.tempId).message.content, "sent while offline");
  assert.deepEqual(await second.pending(), []);

  // exactly once: in B's stream and in history
  await within(cb.sendText("and back"), "B's answer");
  await waitFor(() => seenSecond.message.some((m) => m.content === "and back"), "the second client to receive B's answer");
  assert.equal(seenB.message.filter((m) => m.tempId === stored.tempId).length, 1);
  const history = await new ChatApi({ baseUrl: server.url, token: a.token }).history(coupleId, { order: "asc" });
  assert.deepEqual(history.map((m) => m.content), ["sent while offline", "and back"]);
});

test("short-lived tokens: the client reconnects with a fresh one before each expires and loses nothing", async () => {
  const server = await newServer();
  const { coupleId, a, b } = await server.couple();
  const issued = [];
  const token = () => {
    const t = mintToken(a.id, 4);
    issued.push(t);
    return t;
  };
  const ca = client(server, { token }, { coupleId, storage: new MemoryStorage() });
  const seenA = record(ca);
  const cb = client(server, b, { coupleId, storage: new MemoryStorage() });
  await within(Promise.all([ca.start(), cb.start()]), "both clients to connect");
  assert.equal(ca.userId, a.id);

  // B keeps talking while A's tokens come and go (three of them at least)
  const sent = [];
  let i = 0;
  while (ca.stats.connects < 3) {
    i += 1;
    sent.push((await within(cb.sendText(`tick ${i}`), `B's tick ${i}`)).id);
    await new Promise((r) => setTimeout(r, 200));
    if (i > 200) throw new Error("A did not reconnect with fresh tokens");
  }
  sent.push((await within(cb.sendText("last"), "B's last message")).id);
  await waitFor(() => seenA.message.some((m) => m.content === "last"), "A to receive B's last message");
  // and A can still send, with its current token
  await within(ca.sendText("still me"), "A's send after the refreshes");

  assert.ok(issued.length >= 3, `a fresh token for each connection (${issued.length} issued)`);
  assert.equal(new Set(issued).size >= 2, true);
  const received = seenA.message.filter((m) => m.senderId === b.id).map((m) => m.id);
  assert.deepEqual(received, sent);
  const seqs = streamSeqs(seenA);
  assert.equal(new Set(seqs).size, seqs.length);
  assert.ok(!seenA.error.some((e) => e.code === "AUTH_FAILED"), "no connection was refused");
});

test("rate-limited sends are retried with backoff until each is stored once", async () => {
  const server = new ChatServer({ IEUM_MESSAGE_RATE: "3", IEUM_MESSAGE_BURST: "3" });
  servers.push(server);
  await server.start();
  const { coupleId, a, b } = await server.couple();
  const ca = client(server, a, { coupleId, storage: new MemoryStorage() });
  const cb = client(server, b, { coupleId, storage: new MemoryStorage() });
  const seenA = record(ca);
  const seenB = record(cb);
  await within(Promise.all([ca.start(), cb.start()]), "both clients to connect");

  const contents = Array.from({ length: 9 }, (_, i) => `burst ${i + 1}`);
  const sent = await within(Promise.all(contents.map((c) => ca.sendText(c))), "the burst of sends", 60_000);
  assert.deepEqual(sent.map((m) => m.content), contents);
  assert.ok(seenA.error.some((e) => e.code === "RATE_LIMITED"), "the server refused some of them at first");
  assert.deepEqual(seenA.failed, []);
  await waitFor(() => seenB.message.length === 9, "B to receive the burst");
  assert.deepEqual(seenB.message.map((m) => m.content).sort(), [...contents].sort());
  assert.equal(new Set(seenB.message.map((m) => m.seq)).size, 9);
  assert.deepEqual(await ca.pending(), []);
});

test("a client that knew no seq misses nothing across its first drop", async () => {
  // Started live-only (empty storage, no resumeAfterSeq), it learns from its SUBSCRIBE's
  // RECEIPT where its stream starts; a message sent while it is away arrives when it is back.
  const server = await newServer();
  const { coupleId, a, b } = await server.couple();
  let open;
  let gate = Promise.resolve();
  const ca = client(server, { token: async () => (await gate, a.token()) }, { coupleId, storage: new MemoryStorage() });
  const seenA = record(ca);
  await within(ca.start(), "A to connect");
  assert.equal(ca.lastSeq, 0);
  gate = new Promise((resolve) => (open = resolve)); // the next connection waits for its token
  ca.reconnect();
  await waitFor(() => ca.state === "reconnecting" || ca.state === "connecting", "A to drop");
  await new ChatApi({ baseUrl: server.url, token: b.token }).send(coupleId, { type: "TEXT", content: "while you were away", tempId: "away-1" });
  open();
  await waitFor(() => seenA.message.some((m) => m.tempId === "away-1"), "A to get what came while it was away");
  assert.equal(seenA.message.length, 1);
  assert.equal(ca.lastSeq, seenA.message[0].seq);
});

test("TOKEN_EXPIRED: the client reconnects at once with a fresh token and resumes", async () => {
  const server = await newServer();
  const { coupleId, a, b } = await server.couple();
  const partner = new ChatApi({ baseUrl: server.url, token: b.token });
  await partner.room(); // the server is warm before the short token's clock starts
  let calls = 0;
  const token = () => {
    calls += 1;
    // The first token expires in 3 s; this device's clock runs 30 s late, so the client's own
    // refresh would come long after: the server ends that session with TOKEN_EXPIRED.
    return calls === 1 ? mintExpiringIn(a.id, 3) : mintToken(a.id);
  };
  const realNow = Date.now;
  Date.now = () => realNow() - 30_000;
  try {
    const ca = client(server, { token }, { coupleId, storage: new MemoryStorage(), backoff: { initialMs: 5000, maxMs: 10000 } });
    const seenA = record(ca);
    await within(ca.start(), "A to connect");
    await waitFor(() => seenA.error.some((e) => e.code === "TOKEN_EXPIRED"), "the server's TOKEN_EXPIRED");
    await partner.send(coupleId, { type: "TEXT", content: "across the expiry", tempId: "x-1" });
    await waitFor(() => ca.stats.connects === 2, "A to reconnect with a fresh token");
    // at once, not after the (long) backoff
    const expired = seenA.state.findIndex((s) => s.state === "reconnecting");
    assert.equal(seenA.state[expired].retryInMs, 0);
    await waitFor(() => seenA.message.some((m) => m.content === "across the expiry"), "A to receive the message");
    assert.equal(calls, 2);
    assert.equal(seenA.message.length, 1);
  } finally {
    Date.now = realNow;
  }
});

/** A token expiring `seconds` from now by the real clock (whatever Date.now says). */
function mintExpiringIn(sub, seconds) {
  const b64 = (v) => Buffer.from(JSON.stringify(v)).toString("base64url");
  const now = Math.floor(performance.timeOrigin + performance.now()) / 1000;
  const body = `${b64({ alg: "HS256", typ: "JWT" })}.${b64({ sub, iat: Math.floor(now), exp: Math.floor(now) + seconds })}`;
  return `${body}.${createHmac("sha256", JWT_SECRET).update(body).digest("base64url")}`;
}
