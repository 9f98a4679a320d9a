/**
 * The REST API beside the socket (`/chat/...`), with the member's token: the room, history,
 * REST sends and message changes, read marks, uploads, push devices and settings.
 *
 * @module
 */

import { HttpError } from "./errors.js";
import type {
  ChatMessage,
  ChatSettings,
  Device,
  DeviceRegistration,
  HistoryPage,
  ReadReceipt,
  Room,
  SendRequest,
  TokenProvider,
  UploadResult,
  UploadTicket,
} from "./types.js";
import { trimBase } from "./util.js";

/** Options of {@link ChatApi}. */
export interface ChatApiOptions {
  baseUrl: string;
  token: TokenProvider;
  deviceId?: string;
  fetch?: typeof fetch;
}

/** A query of {@link ChatApi.history}. */
export interface HistoryQuery {
  /** Messages with a seq below this one. */
  before?: number;
  /** Messages with a seq above this one. */
  after?: number;
  /** 1–100, default 50. */
  limit?: number;
  /** `desc` (the server's default: newest first) or `asc`. */
  order?: "asc" | "desc";
}

function retryAfter(response: Response): number | undefined {
  const value = Number(response.headers.get("retry-after") ?? "");
  return Number.isFinite(value) && value >= 0 && response.headers.has("retry-after") ? value : undefined;
}

async function readBody(response: Response): Promise<unknown> {
  const text = await response.text();
  if (!text) return null;
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return text;
  }
}

/** The error of a refused call: the server's JSON code, object storage's XML code, or the status. */
async function refusal(response: Response): Promise<HttpError> {
  const body = await readBody(response);
  let code = "UNEXPECTED";
  if (body && typeof body === "object" && "code" in body && typeof body.code === "string") code = body.code;
  else if (typeof body === "string") {
    const found = /<Code>([^<]+)<\/Code>/.exec(body);
    if (found?.[1]) code = found[1];
  }
  return new HttpError(response.status, code, body, retryAfter(response));
}

/** The wire body of a send request (only the fields given). */
export function sendBody(request: SendRequest, tempId: string): Record<string, unknown> {
  const body: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(request)) {
    if (value !== undefined && key !== "tempId") body[key] = value;
  }
  body.tempId = tempId;
  return body;
}

/** REST calls with the same token provider and device id as the client. */
export class ChatApi {
  readonly baseUrl: string;
  private readonly token: TokenProvider;
  private readonly deviceId?: string;
  private readonly fetchFn: typeof fetch;

  constructor(options: ChatApiOptions) {
    this.baseUrl = trimBase(options.baseUrl);
    this.token = options.token;
    if (options.deviceId !== undefined) this.deviceId = options.deviceId;
    const f = options.fetch ?? (globalThis as { fetch?: typeof fetch }).fetch;
    if (!f) throw new TypeError("no fetch: pass options.fetch");
    // Called on its own, never as this object's method: a browser's fetch refuses any
    // `this` but the global object ("Illegal invocation").
    this.fetchFn = (input, init) => f(input, init);
  }

  /** An absolute URL of a path of this server (absolute URLs are kept). */
  url(path: string): string {
    return /^https?:\/\//i.test(path) ? path : `${this.baseUrl}${path.startsWith("/") ? "" : "/"}${path}`;
  }

  /** One call with the token; resolves with the JSON answer (null for 204), throws HttpError otherwise. */
  async request<T = unknown>(method: string, path: string, body?: unknown, auth = true): Promise<T> {
    const headers: Record<string, string> = { Accept: "application/json" };
    if (auth) {
      const token = await this.token();
      if (typeof token !== "string" || !token) throw new TypeError("the token provider must return a non-empty string");
      headers.Authorization = `Bearer ${token}`;
    }
    if (this.deviceId !== undefined) headers["X-Device-Id"] = this.deviceId;
    const init: RequestInit = { method, headers };
    if (body !== undefined) {
      headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    const response = await this.fetchFn(this.url(path), init);
    if (!response.ok) throw await refusal(response);
    return (await readBody(response)) as T;
  }

  private room_(roomId: string): string {
    return `/chat/rooms/${encodeURIComponent(roomId)}`;
  }

  /** `GET /chat/room`: the caller's couple (HttpError NOT_FOUND without one). */
  room(): Promise<Room> {
    return this.request<Room>("GET", "/chat/room");
  }

  /** Messages as they are now; newest first unless `order: "asc"`. */
  async history(roomId: string, q: HistoryQuery = {}): Promise<ChatMessage[]> {
    return (await this.historyPage(roomId, q)).messages;
  }

  /** One page of history with its `hasMore` and `nextCursor`. */
  historyPage(roomId: string, q: HistoryQuery = {}): Promise<HistoryPage> {
    const params = new URLSearchParams();
    if (q.before !== undefined) params.set("before", String(q.before));
    if (q.after !== undefined) params.set("after", String(q.after));
    if (q.limit !== undefined) params.set("limit", String(q.limit));
    if (q.order !== undefined) params.set("order", q.order);
    const query = params.toString();
    return this.request<HistoryPage>("GET", `${this.room_(roomId)}/messages${query ? `?${query}` : ""}`);
  }

  /** A REST send: the stored message (the stored one again for a repeated tempId). */
  send(roomId: string, request: SendRequest & { tempId: string }): Promise<ChatMessage> {
    return this.request<ChatMessage>("POST", `${this.room_(roomId)}/messages`, sendBody(request, request.tempId));
  }

  /** Mark the partner's messages read; the READ_RECEIPT (also broadcast). */
  markRead(roomId: string, upTo: { upToSeq: number } | { messageIds: string[] }): Promise<ReadReceipt> {
    return this.request<ReadReceipt>("POST", `${this.room_(roomId)}/read`, upTo);
  }

  /** Edit one of the caller's TEXT messages; the edited message. */
  edit(roomId: string, messageId: string, content: string, tempId?: string): Promise<ChatMessage> {
    const body: Record<string, unknown> = { content };
    if (tempId !== undefined) body.tempId = tempId;
    return this.request<ChatMessage>("PATCH", `${this.room_(roomId)}/messages/${encodeURIComponent(messageId)}`, body);
  }

  /** Unsend one of the caller's messages; the tombstone. */
  unsend(roomId: string, messageId: string, tempId?: string): Promise<ChatMessage> {
    const body = tempId !== undefined ? { tempId } : {};
    return this.request<ChatMessage>("POST", `${this.room_(roomId)}/messages/${encodeURIComponent(messageId)}/unsend`, body);
  }

  /** Delete a message for the caller only. */
  async delete(roomId: string, messageId: string): Promise<void> {
    await this.request("DELETE", `${this.room_(roomId)}/messages/${encodeURIComponent(messageId)}`);
  }

  /** Add or remove one emoji; the message with its reactions. */
  react(roomId: string, messageId: string, emoji: string, op: "add" | "remove"): Promise<ChatMessage> {
    const path = `${this.room_(roomId)}/messages/${encodeURIComponent(messageId)}/reactions/${encodeURIComponent(emoji)}`;
    return this.request<ChatMessage>(op === "add" ? "POST" : "DELETE", path);
  }

  /**
   * Upload a file for the couple: the ticket, the bytes (PUT for the local backend, a
   * multipart form POST for S3, as the ticket's `method` says), then its completion.
   * HttpError with the server's code: 413 PAYLOAD_TOO_LARGE, 415 UNSUPPORTED_MEDIA_TYPE,
   * 429 QUOTA_EXCEEDED / RATE_LIMITED (`retryAfter`).
   */
  async upload(
    roomId: string,
    file: Blob | Uint8Array,
    options: { contentType: string; fileName?: string },
  ): Promise<UploadResult> {
    const size = file instanceof Uint8Array ? file.byteLength : file.size;
    if (!size) throw new RangeError("an upload needs at least one byte");
    const ticket = await this.presign(roomId, options.contentType, size, options.fileName);
    await this.transfer(ticket, file, options.fileName);
    return this.complete(ticket);
  }

  /** Step one alone: the ticket for `size` bytes of `contentType`. */
  presign(roomId: string, contentType: string, size: number, fileName?: string): Promise<UploadTicket> {
    const body: Record<string, unknown> = { contentType, size };
    if (fileName !== undefined) body.fileName = fileName;
    return this.request<UploadTicket>("POST", `${this.room_(roomId)}/uploads`, body);
  }

  /** Step two alone: the bytes where the ticket says, without the member's token. */
  async transfer(ticket: UploadTicket, file: Blob | Uint8Array, fileName?: string): Promise<void> {
    let response: Response;
    if (ticket.method === "PUT") {
      response = await this.fetchFn(this.url(ticket.uploadUrl), {
        method: "PUT",
        headers: ticket.headers ?? {},
        body: file as BodyInit,
      });
    } else {
      const form = new FormData();
      for (const [key, value] of Object.entries(ticket.fields ?? {})) form.append(key, value);
      const type = ticket.fields?.["Content-Type"] ?? "application/octet-stream";
      const blob = file instanceof Uint8Array ? new Blob([file as BlobPart], { type }) : file;
      form.append("file", blob, fileName ?? "upload");
      response = await this.fetchFn(this.url(ticket.uploadUrl), { method: "POST", body: form });
    }
    if (!response.ok) throw await refusal(response);
    await response.arrayBuffer().catch(() => undefined);
  }

  /** Step three alone: the server checks the uploaded bytes and answers the result (idempotent). */
  complete(ticket: UploadTicket): Promise<UploadResult> {
    return this.request<UploadResult>("POST", ticket.completeUrl);
  }

  /** `PUT /chat/devices/{deviceId}`: register (201) or update (200) a push device. */
  registerDevice(deviceId: string, body: DeviceRegistration): Promise<Device> {
    return this.request<Device>("PUT", `/chat/devices/${encodeURIComponent(deviceId)}`, body);
  }

  /** The caller's devices, oldest first. */
  async devices(): Promise<Device[]> {
    return (await this.request<{ devices: Device[] }>("GET", "/chat/devices")).devices;
  }

  async deleteDevice(deviceId: string): Promise<void> {
    await this.request("DELETE", `/chat/devices/${encodeURIComponent(deviceId)}`);
  }

  settings(): Promise<ChatSettings> {
    return this.request<ChatSettings>("GET", "/chat/settings");
  }

  updateSettings(settings: ChatSettings): Promise<ChatSettings> {
    return this.request<ChatSettings>("PUT", "/chat/settings", settings);
  }

  /** The Web Push `applicationServerKey` (base64url), null when Web Push is not configured. */
  async vapidKey(): Promise<string | null> {
    try {
      const answer = await this.request<{ publicKey: string }>("GET", "/chat/push/vapid-key", undefined, false);
      return answer?.publicKey ?? null;
    } catch (error) {
      if (error instanceof HttpError && error.status === 404) return null;
      throw error;
    }
  }
}
