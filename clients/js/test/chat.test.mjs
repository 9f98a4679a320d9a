// Two members chat through the built SDK against a real server: send and receive, changes,
// refusals, uploads, and the stream's exactly-once delivery when subscriptions overlap.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import WebSocket from "ws";

import { randomUUID } from "node:crypto";

import { ChatApi, ChatClient, ChatError, HttpError, MemoryStorage, SendError } from "../dist/index.mjs";
import { ChatServer, makePng, mintToken, record, streamSeqs, waitFor, within } from "./support.mjs";

let server;
const clients = [];

function client(member, options = {}) {
  const c = new ChatClient({
    baseUrl: server.url,
    token: member.token,
    webSocket: WebSocket,
    storage: new MemoryStorage(),
    backoff: { initialMs: 100, maxMs: 1000 },
    ...options,
  });
  clients.push(c);
  return c;
}

before(async () => {
  server = new ChatServer();
  await server.start();
});

after(async () => {
  for (const c of clients) await c.stop();
  await server?.dispose();
});

describe("two members", () => {
  test("send and receive between two clients, with changes", async () => {
    const { coupleId, a, b } = await server.couple();
    const ca = client(a, { coupleId });
    const cb = client(b); // its couple from GET /chat/room
    const seenA = record(ca);
    const seenB = record(cb);
    await within(Promise.all([ca.start(), cb.start()]), "both clients to connect");
    assert.equal(ca.state, "connected");
    assert.equal(ca.transport, "websocket");
    assert.equal(cb.coupleId, coupleId);
    assert.equal(ca.userId, a.id);

    const sent = await within(ca.sendText("안녕하세요!"), "A's send");
    assert.equal(sent.content, "안녕하세요!");
    assert.equal(sent.senderId, a.id);
    assert.equal(typeof sent.seq, "number");
    // A tempId the client makes is time-ordered (UUID version 7) and carries when it was made.
    assert.match(sent.tempId, /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    const madeAt = parseInt(sent.tempId.replace(/-/g, "").slice(0, 12), 16);
    assert.ok(Math.abs(madeAt - Date.now()) < 60_000, `tempId time ${madeAt}`);
    await waitFor(() => seenB.message.some((m) => m.id === sent.id), "B to receive A's message");
    assert.deepEqual(seenA.sent.map((s) => s.tempId), [sent.tempId]);
    assert.equal(seenA.sent[0].message.id, sent.id);

    const sticker = await within(cb.send({ type: "STICKER", content: "heart-01", replyTo: sent.id }), "B's sticker");
    assert.ok(sticker.tempId > sent.tempId, "tempIds made later sort later");
    assert.equal(sticker.replyTo.messageId, sent.id);
    await waitFor(() => seenA.message.some((m) => m.id === sticker.id), "A to receive B's sticker");

    await within(ca.edit(sent.id, "고친 내용"), "A's edit");
    await within(cb.react(sent.id, "❤️", "add"), "B's reaction");
    await waitFor(() => seenB.edited.length === 1 && seenA.reaction.length === 1, "the edit and the reaction");
    assert.equal(seenB.edited[0].content, "고친 내용");
    assert.equal(seenA.reaction[0].emoji, "❤️");
    assert.equal(seenA.reaction[0].op, "add");

    cb.markRead({ upToSeq: sent.seq });
    await waitFor(() => seenA.read.some((r) => r.readerId === b.id && r.messageIds.includes(sent.id)), "A to see B's read mark");

    cb.typing(true);
    await waitFor(() => seenA.typing.some((t) => t.userId === b.id && t.typing), "A to see B typing");

    await within(ca.unsend(sticker.id).catch((e) => e), "A's unsend of B's message");
    // the partner's message: FORBIDDEN, removed from the outbox
    assert.equal(seenA.failed.at(-1).code, "FORBIDDEN");

    for (const seen of [seenA, seenB]) {
      const seqs = streamSeqs(seen);
      assert.deepEqual(seqs, [...seqs].sort((x, y) => x - y), "stream entries in seq order");
      assert.equal(new Set(seqs).size, seqs.length, "each stream entry once");
    }
    assert.deepEqual(await ca.pending(), []);
    assert.equal(ca.lastSeq, Math.max(...streamSeqs(seenA)));
  });

  test("SEND_FAILED rejects the send and removes it from the outbox", async () => {
    const { coupleId, a } = await server.couple();
    const ca = client(a, { coupleId });
    const seen = record(ca);
    await within(ca.start(), "A to connect");
    const error = await within(ca.sendText("   ").then(() => null, (e) => e), "the refused send");
    assert.ok(error instanceof SendError, `a SendError, got ${error}`);
    assert.equal(error.code, "SEND_FAILED");
    assert.ok(error.tempId);
    assert.deepEqual(seen.failed.map((f) => f.tempId), [error.tempId]);
    assert.deepEqual(await ca.pending(), []);

    const image = await within(
      ca.send({ type: "IMAGE", imageUrl: "https://elsewhere.example/cat.png" }).then(() => null, (e) => e),
      "the refused image",
    );
    assert.ok(image instanceof SendError);
    assert.equal(image.code, "SEND_FAILED");
    assert.deepEqual(await ca.pending(), []);
    // the client stays usable
    const ok = await within(ca.sendText("still here"), "a send after the refusals");
    assert.equal(ok.content, "still here");
  });

  test("an upload through ChatApi, then an IMAGE message of it", async () => {
    const { coupleId, a, b } = await server.couple();
    const ca = client(a, { coupleId });
    const cb = client(b, { coupleId });
    const seenB = record(cb);
    await within(Promise.all([ca.start(), cb.start()]), "both clients to connect");

    const png = makePng(4, 3);
    const upload = await within(ca.api.upload(coupleId, png, { contentType: "image/png" }), "the upload");
    assert.equal(upload.kind, "IMAGE");
    assert.equal(upload.width, 4);
    assert.equal(upload.height, 3);
    assert.ok(upload.mediaUrl.startsWith(server.url));
    const served = await fetch(upload.mediaUrl);
    assert.equal(served.status, 200);
    assert.equal(served.headers.get("content-type"), "image/png");

    const message = await within(ca.send({ type: "IMAGE", imageUrl: upload.mediaUrl, content: "우리 사진" }), "the IMAGE send");
    assert.equal(message.type, "IMAGE");
    assert.equal(message.mediaUrl, upload.mediaUrl);
    assert.equal(message.width, 4);
    await waitFor(() => seenB.message.some((m) => m.id === message.id && m.imageUrl === upload.mediaUrl), "B to receive the image");

    // a file that is not what its type says: 415 with the server's code
    const api = new ChatApi({ baseUrl: server.url, token: a.token });
    const refused = await api.upload(coupleId, new TextEncoder().encode("not a png"), { contentType: "image/png" }).catch((e) => e);
    assert.equal(refused.status, 415);
    assert.equal(refused.code, "UNSUPPORTED_MEDIA_TYPE");

    const history = await api.history(coupleId, { order: "asc" });
    assert.deepEqual(history.map((m) => m.id), [message.id]);
  });

  test("no duplicate when a resume overlaps what was delivered and a live message", async () => {
    const { coupleId, a, b } = await server.couple();
    const ca = client(a, { coupleId });
    const cb = client(b, { coupleId });
    const seenA = record(ca);
    await within(Promise.all([ca.start(), cb.start()]), "both clients to connect");
    for (let i = 1; i <= 5; i++) await within(cb.sendText(`m${i}`), `B's m${i}`);
    await waitFor(() => seenA.message.length === 5, "A to receive five messages");
    const delivered = ca.lastSeq;

    // Subscribe again from two seqs back (the old subscription stays until the new one is
    // in place) while B sends: the replay and both subscriptions overlap.
    ca.resync(delivered - 2);
    const live = cb.sendText("live");
    ca.resync(0);
    await within(live, "B's live message");
    await within(cb.sendText("after"), "B's last message");
    await waitFor(() => seenA.message.some((m) => m.content === "after"), "A to receive the last message");

    // a reconnect resumes from the last seq too
    ca.reconnect();
    await within(cb.sendText("after reconnect"), "B's message across A's reconnect");
    await waitFor(() => seenA.message.some((m) => m.content === "after reconnect"), "A to receive it after the reconnect");

    assert.ok(ca.stats.duplicatesDropped >= 2, `the replays overlapped (dropped ${ca.stats.duplicatesDropped})`);
    assert.equal(ca.stats.connects, 2);
    const contents = seenA.message.map((m) => m.content);
    assert.deepEqual(contents, ["m1", "m2", "m3", "m4", "m5", "live", "after", "after reconnect"]);
    const seqs = streamSeqs(seenA);
    assert.equal(new Set(seqs).size, seqs.length);
    assert.deepEqual(seqs, [...seqs].sort((x, y) => x - y));
  });
});

describe("the platform's fetch", () => {
  test("is called as browsers require: not as a method of the SDK's objects", async () => {
    // A browser's window.fetch throws "Illegal invocation" when its `this` is anything but
    // the global object (or undefined); Node's does not, so the check is made here.
    const nodeFetch = globalThis.fetch;
    globalThis.fetch = function (input, init) {
      if (this !== undefined && this !== globalThis) throw new TypeError("Illegal invocation");
      return nodeFetch(input, init);
    };
    try {
      const { coupleId, a } = await server.couple();
      const api = new ChatApi({ baseUrl: server.url, token: a.token });
      const room = await within(api.room(), "the room");
      assert.equal(room.id, coupleId);
      const upload = await within(api.upload(coupleId, makePng(2, 2), { contentType: "image/png" }), "the upload");
      assert.equal(upload.kind, "IMAGE");
    } finally {
      globalThis.fetch = nodeFetch;
    }
  });
});

describe("refusals at start", () => {
  test("start() rejects when the member has no couple (NOT_FOUND), a bad token (AUTH_FAILED) or another couple (UNAUTHORIZED)", async () => {
    const single = randomUUID();
    await server.admin("PUT", `/users/${single}`, { name: "혼자" });
    const lonely = client({ token: () => mintToken(single) });
    const noCouple = await within(lonely.start().then(() => null, (e) => e), "the start without a couple");
    assert.ok(noCouple instanceof HttpError, `an HttpError, got ${noCouple}`);
    assert.equal(noCouple.code, "NOT_FOUND");
    assert.equal(lonely.state, "closed");

    const { coupleId, a } = await server.couple();
    const forged = mintToken(a.id, 3600, "not-the-server-secret-0123456789-0123456789");
    const badToken = client({ token: () => forged }, { coupleId });
    const authFailed = await within(badToken.start().then(() => null, (e) => e), "the start with a bad token");
    assert.ok(authFailed instanceof ChatError);
    assert.equal(authFailed.code, "AUTH_FAILED");
    assert.equal(badToken.state, "closed");

    const other = await server.couple();
    const outsider = client(other.a, { coupleId });
    const unauthorized = await within(outsider.start().then(() => null, (e) => e), "the start on another couple");
    assert.ok(unauthorized instanceof ChatError);
    assert.equal(unauthorized.code, "UNAUTHORIZED");
    assert.equal(outsider.state, "closed");
  });

  test("a dissolved couple closes the client for good", async () => {
    const { coupleId, a } = await server.couple();
    const ca = client(a, { coupleId });
    const seen = record(ca);
    await within(ca.start(), "A to connect");
    await server.admin("POST", `/couples/${coupleId}/dissolve`);
    await waitFor(() => ca.state === "closed", "A to close");
    assert.ok(seen.system.some((e) => e.event === "COUPLE_DISSOLVED"));
    assert.ok(seen.error.some((e) => e.code === "COUPLE_DISSOLVED" && e.fatal));
    assert.ok(!seen.state.some((s) => s.state === "reconnecting"), "no reconnect");
    const refused = await ca.sendText("too late").then(() => null, (e) => e);
    assert.equal(refused.code, "CLIENT_CLOSED");
  });
});
