/**
 * The wire shapes of the ieum-chat server (camelCase exactly as its JSON; timestamps are the
 * server's local date-time strings, e.g. `2024-01-11T10:10:00.000`, in its IEUM_TIMEZONE),
 * and the option and event types of the SDK.
 *
 * @module
 */

import type { ChatStorage } from "./storage.js";
import type { SendError } from "./errors.js";

/** Returns a JWT of the member; called for each connection and REST call. */
export type TokenProvider = () => string | Promise<string>;

/** The life of a {@link ChatClient}'s connection. */
export type ConnectionState = "idle" | "connecting" | "connected" | "reconnecting" | "closed";

/** How the client reaches the server. */
export type TransportKind = "websocket" | "sockjs";

/** Options of {@link ChatClient}. */
export interface ChatClientOptions {
  /** `http://host:8080` or `https://…`; `ws(s)://…/ws/chat` and SockJS `/ws/chat` are derived. */
  baseUrl: string;
  /** Called for each connection; again before the token's `exp` and after TOKEN_EXPIRED. */
  token: TokenProvider;
  /** The couple whose chat this is; when omitted, `GET /chat/room`'s id. */
  coupleId?: string;
  /** Sent as CONNECT header `x-device-id` and REST header `X-Device-Id`. */
  deviceId?: string;
  /** The outbox and the last seq; default: IndexedDbStorage in browsers, MemoryStorage elsewhere. */
  storage?: ChatStorage;
  /** Default `"auto"`: WebSocket first, SockJS when the WebSocket fails to open. */
  transport?: "auto" | "websocket" | "sockjs";
  /** A WebSocket constructor (React Native's global, Node's `ws`); default `globalThis.WebSocket`. */
  webSocket?: typeof WebSocket;
  /** Default `globalThis.fetch`. */
  fetch?: typeof fetch;
  /** Reconnect delays: full jitter, uniform in [0, min(maxMs, initialMs * 2^attempt)]; default 500 ms .. 30 s. */
  backoff?: { initialMs?: number; maxMs?: number };
  /** Default true: SUBSCRIBE with `x-resume-after-seq` = the last seq seen (persisted in storage). */
  resume?: boolean;
  /** How long a partner's `typing: true` holds without a repeat before the client emits `typing: false` (default 6000 ms; 0: never). */
  typingTimeoutMs?: number;
  /**
   * Where to resume when the storage knows no seq for the couple yet: `0` replays the whole
   * stream, a seq replays what follows it; when omitted the first connection starts live.
   */
  resumeAfterSeq?: number;
  /** SockJS transports to allow (sockjs-client's names); default: all of them. */
  sockjsTransports?: string[];
  /** STOMP heart-beats in ms, [outgoing, incoming]; default [10000, 10000]. */
  heartbeatMs?: [number, number];
  /** Milliseconds a connection may take from opening to subscribed; default 15000. */
  connectTimeoutMs?: number;
}

/** What a reply shows of the message it answers. */
export interface ReplyPreview {
  messageId: string;
  senderId: string | null;
  type: string | null;
  preview: string | null;
  unsent?: boolean;
}

/** One emoji on a message and who put it there, in order. */
export interface Reaction {
  emoji: string;
  userIds: string[];
}

/** A stored message of the couple's stream (also NOTICE, without a sender). */
export interface ChatMessage {
  id: string;
  coupleId?: string;
  seq: number;
  senderId: string | null;
  senderName: string | null;
  senderProfileImage: string | null;
  content: string | null;
  /** TEXT, IMAGE, AUDIO, VIDEO, FILE, STICKER or NOTICE. */
  type: string;
  imageUrl: string | null;
  isRead: boolean;
  readAt: string | null;
  createdAt: string;
  tempId: string | null;
  replyTo?: ReplyPreview | null;
  editedAt?: string | null;
  unsent?: boolean;
  reactions?: Reaction[];
  /** The stream position a replayed or history message reflects. */
  asOfSeq?: number | null;
  mediaUrl?: string | null;
  thumbnailUrl?: string | null;
  durationMs?: number | null;
  fileName?: string | null;
  size?: number | null;
  width?: number | null;
  height?: number | null;
}

/** The sender changed a TEXT message (`content` null when it was unsent since). */
export interface MessageEdited {
  type: "MESSAGE_EDITED";
  coupleId: string;
  seq: number;
  messageId: string;
  userId: string;
  tempId: string | null;
  content: string | null;
  editedAt: string;
}

/** The sender took a message back; a tombstone stays. */
export interface MessageUnsent {
  type: "MESSAGE_UNSENT";
  coupleId: string;
  seq: number;
  messageId: string;
  userId: string;
  tempId: string | null;
  unsentAt: string;
}

/** A member added or removed one emoji on a message. */
export interface ReactionChanged {
  type: "REACTION";
  coupleId: string;
  seq: number;
  messageId: string;
  userId: string;
  tempId: string | null;
  emoji: string;
  op: "add" | "remove";
}

/** This member deleted a message for themselves (on any of their devices). */
export interface MessageDeleted {
  type: "MESSAGE_DELETED";
  coupleId: string;
  messageId: string;
  userId: string;
  deletedAt: string;
  /** Set only where it stands in a replay in place of the message. */
  seq?: number | null;
}

/** `readerId` read these messages (only those that changed). */
export interface ReadReceipt {
  type: "READ_RECEIPT";
  coupleId: string;
  seq: number | null;
  readerId: string;
  messageIds: string[];
  seqs: number[];
  readAt: string | null;
}

/** USER_CONNECTED, USER_DISCONNECTED, TYPING, COUPLE_DISSOLVED, ... */
export interface SystemEvent {
  type: "SYSTEM";
  event: string;
  userId?: string | null;
  timestamp: string;
  typing?: boolean;
  coupleId?: string;
}

/** An error payload (`/user/queue/errors`, an ERROR frame's body, a REST error). */
export interface ErrorPayload {
  type?: "ERROR";
  code: string;
  message: string;
  detail?: string | null;
  tempId?: string | null;
  /** True for a STOMP ERROR frame: the server closed that connection. */
  fatal?: boolean;
}

/** A message to send. */
export type SendRequest =
  | { type: "TEXT"; content: string; replyTo?: string }
  | { type: "STICKER"; content: string; replyTo?: string }
  | { type: "IMAGE"; imageUrl: string; content?: string; replyTo?: string }
  | { type: "AUDIO"; mediaUrl: string; durationMs?: number; replyTo?: string }
  | { type: "VIDEO"; mediaUrl: string; durationMs?: number; thumbnailUrl?: string; replyTo?: string }
  | { type: "FILE"; mediaUrl: string; fileName?: string; size?: number; replyTo?: string };

/** What an outbox entry does. */
export type PendingKind = "message" | "edit" | "unsend" | "delete" | "react";

/** An outbox entry not yet acknowledged by the server. */
export interface PendingSend {
  tempId: string;
  kind: PendingKind;
  /** The JSON body written to the server (it carries the tempId). */
  body: Record<string, unknown>;
  /** Epoch milliseconds; entries are kept and re-sent in this order. */
  createdAt: number;
  /** Times written to a connection. */
  attempts: number;
}

/** The events of {@link ChatClient.on}. */
export interface ChatEvents {
  /** Each stream message once, in seq order (also NOTICE). */
  message: ChatMessage;
  edited: MessageEdited;
  unsent: MessageUnsent;
  reaction: ReactionChanged;
  deleted: MessageDeleted;
  read: ReadReceipt;
  typing: { userId: string; typing: boolean };
  /** USER_CONNECTED / USER_DISCONNECTED. */
  presence: { userId: string; online: boolean };
  /** Any other SYSTEM event (COUPLE_DISSOLVED, ...). */
  system: SystemEvent;
  /** An outbox entry acknowledged; `message`: the stored message of a send. */
  sent: { tempId: string; message?: ChatMessage };
  /** An outbox entry refused for good; it was removed from the outbox. */
  failed: SendError;
  /** Any other error payload (`/user/queue/errors` or an ERROR frame). */
  error: ErrorPayload;
  state: { state: ConnectionState; transport: TransportKind | null; retryInMs?: number };
}

/** `GET /chat/room`. */
export interface Room {
  id: string;
  partner: { id: string; name: string | null; profileImage: string | null; online: boolean } | null;
  unreadCount: number;
  lastMessage: ChatMessage | null;
}

/** A page of `GET /chat/rooms/{roomId}/messages`. */
export interface HistoryPage {
  messages: ChatMessage[];
  hasMore: boolean;
  nextCursor: number | null;
}

/** The ticket of `POST /chat/rooms/{roomId}/uploads`. */
export interface UploadTicket {
  uploadId: string;
  kind: string;
  /** PUT: the bytes as the body with `headers` (local backend); POST: a multipart form of `fields`, then `file` (S3). */
  method: "PUT" | "POST";
  uploadUrl: string;
  headers: Record<string, string>;
  fields: Record<string, string>;
  expiresAt: string;
  expiresIn: number;
  mediaUrl: string;
  imageUrl: string | null;
  completeUrl: string;
}

/** A completed, checked upload: send it as a message of its `kind` with its `mediaUrl`. */
export interface UploadResult {
  uploadId: string;
  kind: string;
  mediaUrl: string;
  imageUrl?: string;
  thumbnailUrl?: string | null;
  durationMs?: number | null;
  width?: number | null;
  height?: number | null;
  size?: number;
  fileName?: string | null;
  contentType?: string;
}

/** A push device of `PUT /chat/devices/{deviceId}`. */
export interface DeviceRegistration {
  platform: "fcm" | "apns" | "webpush";
  token?: string;
  subscription?: { endpoint: string; keys: { p256dh: string; auth: string } };
  locale?: string;
}

/** A registered device. */
export interface Device {
  deviceId: string;
  platform: string;
  locale: string | null;
  tokenSuffix: string | null;
  createdAt: string;
  updatedAt: string;
}

/** `GET /chat/settings`. */
export interface ChatSettings {
  pushPreview: boolean;
}
