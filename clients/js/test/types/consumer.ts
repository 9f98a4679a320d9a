// Compiled (not run) by types.test.mjs against dist/index.d.ts: every public name and
// signature an application relies on, as documented.
import {
  ChatApi,
  ChatClient,
  ChatError,
  HttpError,
  IndexedDbStorage,
  MemoryStorage,
  SendError,
  type ChatClientOptions,
  type ChatEvents,
  type ChatMessage,
  type ChatStorage,
  type ConnectionState,
  type ErrorPayload,
  type MessageDeleted,
  type MessageEdited,
  type MessageUnsent,
  type PendingSend,
  type ReactionChanged,
  type ReadReceipt,
  type Room,
  type SendRequest,
  type SystemEvent,
  type TokenProvider,
  type UploadResult,
} from "@ieum/chat";

const token: TokenProvider = async () => "jwt";
const storage: ChatStorage = new IndexedDbStorage("ieum-chat");
const options: ChatClientOptions = {
  baseUrl: "http://127.0.0.1:8080",
  token,
  coupleId: "c",
  deviceId: "d",
  storage: new MemoryStorage(),
  transport: "auto",
  webSocket: WebSocket,
  fetch,
  backoff: { initialMs: 500, maxMs: 30_000 },
  resume: true,
  typingTimeoutMs: 5000,
};
void storage;

export async function use(): Promise<void> {
  const client = new ChatClient(options);
  const started: Promise<void> = client.start();
  await started;
  const state: ConnectionState = client.state;
  const transport: "websocket" | "sockjs" | null = client.transport;
  const coupleId: string | null = client.coupleId;
  const userId: string | null = client.userId;
  const lastSeq: number | null = client.lastSeq;
  const api: ChatApi = client.api;
  void [state, transport, coupleId, userId, lastSeq];

  const off: () => void = client.on("message", (m: ChatMessage) => void m.seq);
  off();
  const onEdited = (e: MessageEdited) => void e.content;
  client.on("edited", onEdited);
  client.off("edited", onEdited);
  client.on("unsent", (e: MessageUnsent) => void e.unsentAt);
  client.on("reaction", (e: ReactionChanged) => void e.op);
  client.on("deleted", (e: MessageDeleted) => void e.messageId);
  client.on("read", (e: ReadReceipt) => void e.messageIds);
  client.on("typing", (e: { userId: string; typing: boolean }) => void e.typing);
  client.on("presence", (e: { userId: string; online: boolean }) => void e.online);
  client.on("system", (e: SystemEvent) => void e.event);
  client.on("sent", (e: { tempId: string; message?: ChatMessage }) => void e.tempId);
  client.on("failed", (e: SendError) => void [e.tempId, e.code]);
  client.on("error", (e: ErrorPayload) => void e.code);
  client.on("state", (e: ChatEvents["state"]) => void [e.state, e.transport, e.retryInMs]);

  const requests: SendRequest[] = [
    { type: "TEXT", content: "t", replyTo: "m" },
    { type: "STICKER", content: "s" },
    { type: "IMAGE", imageUrl: "u", content: "c" },
    { type: "AUDIO", mediaUrl: "u", durationMs: 1 },
    { type: "VIDEO", mediaUrl: "u", durationMs: 1, thumbnailUrl: "t" },
    { type: "FILE", mediaUrl: "u", fileName: "f", size: 1 },
  ];
  const sent: ChatMessage = await client.send(requests[0]!);
  const text: ChatMessage = await client.sendText("hi", { replyTo: sent.id });
  const pending: PendingSend[] = await client.pending();
  const kind: "message" | "edit" | "unsend" | "delete" | "react" = pending[0]!.kind;
  void [text, kind];
  await client.discard("t");
  await client.edit(sent.id, "x");
  await client.unsend(sent.id);
  await client.deleteForMe(sent.id);
  await client.react(sent.id, "❤️", "add");
  client.markRead({ upToSeq: 1 });
  client.markRead({ messageIds: [sent.id] });
  client.typing(true);
  await client.stop();

  const rest = new ChatApi({ baseUrl: "http://x", token, deviceId: "d", fetch });
  const room: Room = await rest.room();
  const history: ChatMessage[] = await rest.history(room.id, { before: 10, after: 1, limit: 5 });
  const restSent: ChatMessage = await rest.send(room.id, { type: "TEXT", content: "x", tempId: "t" });
  await rest.markRead(room.id, { upToSeq: 3 });
  const upload: UploadResult = await api.upload(room.id, new Uint8Array([1]), { contentType: "image/png", fileName: "a.png" });
  const blobUpload: UploadResult = await api.upload(room.id, new Blob(["x"]), { contentType: "text/plain" });
  await rest.registerDevice("d", { platform: "fcm", token: "t", locale: "ko-KR" });
  const settings: { pushPreview: boolean } = await rest.settings();
  await rest.updateSettings({ pushPreview: false });
  const vapid: string | null = await rest.vapidKey();
  void [history, restSent, upload, blobUpload, settings, vapid];

  const errors: ChatError[] = [new ChatError("X"), new SendError("SEND_FAILED", "t"), new HttpError(400, "BAD_REQUEST", null)];
  const code: string = errors[0]!.code;
  const tempId: string = (errors[1] as SendError).tempId;
  const status: number = (errors[2] as HttpError).status;
  const body: unknown = (errors[2] as HttpError).body;
  const retryAfter: number | undefined = (errors[2] as HttpError).retryAfter;
  void [code, tempId, status, body, retryAfter];

  const mem: ChatStorage = new MemoryStorage();
  await mem.putPending("c", { tempId: "t", kind: "message", body: {}, createdAt: 1, attempts: 0 });
  const seq: number | null = await mem.getLastSeq("c");
  await mem.setLastSeq("c", 1);
  await mem.removePending("c", "t");
  const list: PendingSend[] = await mem.listPending("c");
  void [seq, list];
}
