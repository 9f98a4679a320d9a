// IndexedDbStorage (on fake-indexeddb, an IndexedDB implementation for Node): the outbox and
// the last seq survive a reload, i.e. a new storage object and a new client over the same
// database, against a real server.
import "fake-indexeddb/auto";

import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import WebSocket from "ws";

import { ChatApi, ChatClient, IndexedDbStorage, defaultStorage } from "../dist/index.mjs";
import { ChatServer, record, waitFor, within } from "./support.mjs";

let server;
before(async () => {
  server = new ChatServer();
  await server.start();
});
after(async () => {
  await server?.dispose();
});

test("IndexedDbStorage keeps entries by couple, oldest first, and the last seq", async () => {
  assert.ok(defaultStorage() instanceof IndexedDbStorage, "the default where IndexedDB exists");
  const storage = new IndexedDbStorage("storage-unit");
  const entry = (tempId, createdAt) => ({ tempId, kind: "message", body: { type: "TEXT", content: tempId, tempId }, createdAt, attempts: 0 });
  await storage.putPending("c1", entry("b", 2));
  await storage.putPending("c1", entry("a", 1));
  await storage.putPending("c2", entry("z", 1));
  await storage.putPending("c1", { ...entry("b", 2), attempts: 3 });
  const reopened = new IndexedDbStorage("storage-unit");
  assert.deepEqual((await reopened.listPending("c1")).map((p) => [p.tempId, p.attempts]), [["a", 0], ["b", 3]]);
  assert.deepEqual((await reopened.listPending("c1"))[0], entry("a", 1));
  await reopened.removePending("c1", "a");
  assert.deepEqual((await storage.listPending("c1")).map((p) => p.tempId), ["b"]);
  assert.deepEqual((await storage.listPending("c2")).map((p) => p.tempId), ["z"]);
  assert.equal(await storage.getLastSeq("c1"), null);
  await storage.setLastSeq("c1", 42);
  assert.equal(await reopened.getLastSeq("c1"), 42);
});

test("a reload over IndexedDB: the next client sends what was left and resumes after the stored seq", async () => {
  const { coupleId, a, b } = await server.couple();
  const partner = new ChatApi({ baseUrl: server.url, token: b.token });
  const first = new ChatClient({ baseUrl: server.url, token: a.token, coupleId, webSocket: WebSocket, resumeAfterSeq: 0 });
  const seenFirst = record(first);
  await within(first.start(), "the first client to connect");
  await partner.send(coupleId, { type: "TEXT", content: "one", tempId: "p-1" });
  await waitFor(() => seenFirst.message.length === 1, "the first client to receive a message");
  await waitFor(async () => (await new IndexedDbStorage().getLastSeq(coupleId)) === 1, "the seq to be stored");
  await first.stop();
  // written to storage before it is transmitted: a client that never connects still keeps it
  const offline = new ChatClient({ baseUrl: server.url, token: a.token, coupleId, webSocket: WebSocket });
  const left = offline.sendText("left behind").catch((e) => e.code);
  await waitFor(async () => (await offline.pending()).length === 1, "the send to reach IndexedDB");
  await offline.stop();
  assert.equal(await left, "CLIENT_CLOSED");
  await partner.send(coupleId, { type: "TEXT", content: "two", tempId: "p-2" });

  const second = new ChatClient({ baseUrl: server.url, token: a.token, coupleId, webSocket: WebSocket });
  const seen = record(second);
  await within(second.start(), "the second client to connect");
  await waitFor(() => seen.message.some((m) => m.content === "left behind"), "the left send to be delivered");
  await waitFor(async () => (await second.pending()).length === 0, "the outbox to empty");
  assert.deepEqual(seen.message.map((m) => m.content), ["two", "left behind"]);
  const history = await partner.history(coupleId, { order: "asc" });
  assert.deepEqual(history.map((m) => m.content), ["one", "two", "left behind"]);
  await second.stop();
});
