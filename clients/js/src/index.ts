/**
 * `@ieum/chat`: the typed client SDK of the ieum-chat server for web and React Native.
 *
 * - {@link ChatClient}: the live chat of one couple (STOMP over WebSocket, SockJS fallback),
 *   resumed by seq after every reconnect, with an outbox that survives reconnects and reloads.
 * - {@link ChatApi}: the REST API (history, REST sends, uploads, devices, settings).
 * - {@link ChatStorage}: where the outbox and the last seq live ({@link IndexedDbStorage},
 *   {@link MemoryStorage}, or your own).
 *
 * @packageDocumentation
 */

export { ChatClient, isTransient } from "./client.js";
export type { ClientStats } from "./client.js";
export { ChatApi, sendBody } from "./api.js";
export type { ChatApiOptions, HistoryQuery } from "./api.js";
export { ChatError, SendError, HttpError } from "./errors.js";
export { MemoryStorage, IndexedDbStorage, defaultStorage, sortPending } from "./storage.js";
export type { ChatStorage } from "./storage.js";
export { Backoff } from "./backoff.js";
export { decodeJwt } from "./util.js";
export type { TokenClaims } from "./util.js";
export type {
  TokenProvider,
  ConnectionState,
  TransportKind,
  ChatClientOptions,
  ReplyPreview,
  Reaction,
  ChatMessage,
  MessageEdited,
  MessageUnsent,
  ReactionChanged,
  MessageDeleted,
  ReadReceipt,
  SystemEvent,
  ErrorPayload,
  SendRequest,
  PendingKind,
  PendingSend,
  ChatEvents,
  Room,
  HistoryPage,
  UploadTicket,
  UploadResult,
  DeviceRegistration,
  Device,
  ChatSettings,
} from "./types.js";

/** The SDK's version. */
declare const __VERSION__: string;
export const VERSION: string = __VERSION__;
