/**
 * {@link ChatClient}: one member's live view of one couple's chat, kept alive across
 * reconnects.
 *
 * One connection at a time (a "session", numbered by `generation`); everything a session's
 * callbacks do is checked against the current generation, so a late callback of a dead
 * session changes nothing. What survives a reconnect: the last seq delivered (resubscribe
 * with `x-resume-after-seq`), the outbox (re-sent with the same tempIds until their
 * RECEIPT; the server stores a repeated tempId once), the handlers.
 *
 * @module
 */

import { Client, type IFrame, type IMessage, type StompSubscription } from "@stomp/stompjs";
import SockJS from "sockjs-client";

import { ChatApi, sendBody } from "./api.js";
import { Backoff } from "./backoff.js";
import { ChatError, HttpError, SendError } from "./errors.js";
import { defaultStorage, type ChatStorage } from "./storage.js";
import type {
  ChatClientOptions,
  ChatEvents,
  ChatMessage,
  ConnectionState,
  ErrorPayload,
  MessageDeleted,
  MessageEdited,
  MessageUnsent,
  PendingKind,
  PendingSend,
  ReactionChanged,
  ReadReceipt,
  SendRequest,
  SystemEvent,
  TransportKind,
} from "./types.js";
import { decodeJwt, timeOrderedId, toWebSocketUrl, trimBase } from "./util.js";

const SUFFIX: Record<PendingKind, string> = {
  message: "",
  edit: "/edit",
  unsend: "/unsend",
  delete: "/delete",
  react: "/react",
};

/** ERROR codes after which no reconnect would be admitted: the client closes. */
const ENDED = new Set(["COUPLE_DISSOLVED", "ACCOUNT_DELETED"]);
/** Refusals of the first start that no retry would change. */
const FATAL_AT_START = new Set(["AUTH_FAILED", "NOT_FOUND", "UNAUTHORIZED", "ACCOUNT_DELETED", "COUPLE_DISSOLVED"]);
/** The detail of a SEND_FAILED caused by the database, not the message: worth retrying. */
const TRANSIENT_STORE_DETAIL = "could not be stored";
const MAX_SEND_RETRIES = 10;
/** After a message's RECEIPT, how long to wait for its broadcast before asking REST for it. */
const CONFIRM_AFTER_MS = 3000;

/** Whether a refusal is worth retrying as is: RATE_LIMITED, or the database failed. */
export function isTransient(code: string, detail?: string | null): boolean {
  return (
    code === "RATE_LIMITED" ||
    code === "UNAVAILABLE" ||
    (code === "SEND_FAILED" && (detail ?? "").includes(TRANSIENT_STORE_DETAIL))
  );
}

type Handler<K extends keyof ChatEvents> = (event: ChatEvents[K]) => void;

/** The `type`s of the stream's entries that are not chat messages. */
type StreamEventType =
  | "MESSAGE_EDITED"
  | "MESSAGE_UNSENT"
  | "REACTION"
  | "MESSAGE_DELETED"
  | "READ_RECEIPT"
  | "SYSTEM"
  | "ERROR";

interface Waiter {
  resolve: (message: ChatMessage | undefined) => void;
  reject: (error: Error) => void;
}

interface Entry {
  item: PendingSend;
  waiters: Waiter[];
  /** The session generation it was last written on; null: write it on the next flush. */
  writtenOn: number | null;
  receiptId: string | null;
  /** Epoch ms before which it is not written (a transient refusal's backoff). */
  notBefore: number;
  retries: number;
  /** Its RECEIPT came (it is stored); a message waits for its broadcast. */
  acked: boolean;
  message?: ChatMessage;
  confirmTimer?: ReturnType<typeof setTimeout>;
  confirmAttempts: number;
}

/** Counters of what a {@link ChatClient} did (diagnostics and tests). */
export interface ClientStats {
  /** Connections that reached "connected". */
  connects: number;
  /** Stream entries dropped because their seq was delivered already. */
  duplicatesDropped: number;
  /** Seq gaps seen (each makes the client replay from its last seq). */
  gaps: number;
  /** Outbox writes after the first one of an entry (reconnects, retries). */
  resent: number;
  /** Connections that fell back from WebSocket to SockJS. */
  fallbacks: number;
}

interface Session {
  generation: number;
  stomp: Client;
  transport: TransportKind;
  opened: boolean;
  ready: boolean;
  ended: boolean;
  /** The live subscriptions of the couple's topic (two while a resync replaces one). */
  topicSubs: Map<string, StompSubscription>;
  connectTimer?: ReturnType<typeof setTimeout>;
  refreshTimer?: ReturnType<typeof setTimeout>;
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function parseError(body: string | undefined, fallback: string): ErrorPayload {
  if (body) {
    try {
      const data: unknown = JSON.parse(body);
      if (isObject(data) && typeof data.code === "string") {
        return { ...(data as unknown as ErrorPayload) };
      }
    } catch {
      // not JSON: the message header says it
    }
  }
  return { type: "ERROR", code: fallback, message: fallback };
}

function isReactNative(): boolean {
  const nav = (globalThis as { navigator?: { product?: string } }).navigator;
  return nav?.product === "ReactNative";
}

/**
 * A member's connection to one couple's chat: connects (WebSocket, or SockJS when the
 * WebSocket cannot open), reconnects with backoff and full jitter, refreshes its token before
 * it expires, delivers each entry of the couple's stream once in seq order, and keeps an
 * outbox that survives reconnects and reloads.
 */
export class ChatClient {
  /** REST with the same token provider and device id. */
  readonly api: ChatApi;

  private readonly options: ChatClientOptions;
  private readonly baseUrl: string;
  private readonly storage: ChatStorage;
  private readonly backoff: Backoff;
  private readonly retryBackoff = new Backoff(500, 10_000);
  private readonly resumeEnabled: boolean;
  private readonly handlers = new Map<keyof ChatEvents, Set<Handler<keyof ChatEvents>>>();
  private readonly outbox = new Map<string, Entry>();

  /** Counters of what this client did. */
  readonly stats: ClientStats = { connects: 0, duplicatesDropped: 0, gaps: 0, resent: 0, fallbacks: 0 };

  private _state: ConnectionState = "idle";
  private _transport: TransportKind | null = null;
  private _coupleId: string | null;
  private _userId: string | null = null;
  private _lastSeq: number | null = null;

  private session: Session | null = null;
  private generation = 0;
  private ids = 0;
  private attempt = 0;
  private everReady = false;
  private stopped = false;
  private preferSockjs = false;
  /** A WebSocket connection has opened before: a later one that cannot open means the server
   * or the network is down, not that something on the way refuses WebSockets. */
  private webSocketWorked = false;
  private reconnectTimer?: ReturnType<typeof setTimeout>;
  private flushTimer?: ReturnType<typeof setTimeout>;
  private pausedUntil = 0;
  private lastCreatedAt = 0;
  private storageChain: Promise<unknown> = Promise.resolve();
  private startPromise: Promise<void> | null = null;
  private startSettle: { resolve: () => void; reject: (error: Error) => void } | null = null;
  private loaded: Promise<void> | null = null;
  private readonly typingTimers = new Map<string, ReturnType<typeof setTimeout>>();

  constructor(options: ChatClientOptions) {
    if (!options || typeof options.baseUrl !== "string" || typeof options.token !== "function") {
      throw new TypeError("ChatClient needs { baseUrl, token }");
    }
    if (!/^https?:\/\/[^/]/i.test(options.baseUrl)) {
      throw new TypeError(`baseUrl must be an http(s) URL, not ${JSON.stringify(options.baseUrl)}`);
    }
    this.options = options;
    this.baseUrl = trimBase(options.baseUrl);
    this.storage = options.storage ?? defaultStorage();
    this.backoff = new Backoff(options.backoff?.initialMs ?? 500, options.backoff?.maxMs ?? 30_000);
    this.resumeEnabled = options.resume ?? true;
    this._coupleId = options.coupleId ?? null;
    const apiOptions: ConstructorParameters<typeof ChatApi>[0] = { baseUrl: options.baseUrl, token: options.token };
    if (options.deviceId !== undefined) apiOptions.deviceId = options.deviceId;
    if (options.fetch !== undefined) apiOptions.fetch = options.fetch;
    this.api = new ChatApi(apiOptions);
  }

  // -- state ------------------------------------------------------------------------------

  get state(): ConnectionState {
    return this._state;
  }

  /** The transport of the current (or last) connection. */
  get transport(): TransportKind | null {
    return this._transport;
  }

  /** On SockJS, the transport sockjs-client settled on ("websocket", "xhr-streaming",
   * "xhr-polling", ...) once the connection opened; otherwise null. */
  get sockjsTransport(): string | null {
    if (this._transport !== "sockjs") return null;
    const socket = this.session?.stomp?.webSocket as { transport?: unknown } | undefined;
    return typeof socket?.transport === "string" ? socket.transport : null;
  }

  get coupleId(): string | null {
    return this._coupleId;
  }

  /** The token's `sub`. */
  get userId(): string | null {
    return this._userId;
  }

  /** The seq of the last stream entry delivered. */
  get lastSeq(): number | null {
    return this._lastSeq;
  }

  // -- events -----------------------------------------------------------------------------

  /** Listen to `type`; returns the function that stops listening. */
  on<K extends keyof ChatEvents>(type: K, handler: (event: ChatEvents[K]) => void): () => void {
    let set = this.handlers.get(type);
    if (!set) this.handlers.set(type, (set = new Set()));
    set.add(handler as Handler<keyof ChatEvents>);
    return () => this.off(type, handler);
  }

  off<K extends keyof ChatEvents>(type: K, handler: (event: ChatEvents[K]) => void): void {
    this.handlers.get(type)?.delete(handler as Handler<keyof ChatEvents>);
  }

  private emit<K extends keyof ChatEvents>(type: K, event: ChatEvents[K]): void {
    const set = this.handlers.get(type);
    if (!set) return;
    for (const handler of [...set]) {
      try {
        (handler as Handler<K>)(event);
      } catch (error) {
        // A failing handler must not break delivery to the others, nor the stream.
        console.error(`@ieum/chat: a "${String(type)}" handler threw`, error);
      }
    }
  }

  private setState(state: ConnectionState, retryInMs?: number): void {
    this._state = state;
    const event: ChatEvents["state"] = { state, transport: this._transport };
    if (retryInMs !== undefined) event.retryInMs = retryInMs;
    this.emit("state", event);
  }

  // -- lifecycle --------------------------------------------------------------------------

  /**
   * Connect; resolves once connected and subscribed the first time. Rejects (and closes)
   * on a refusal no retry would change: AUTH_FAILED, NOT_FOUND (no couple), UNAUTHORIZED.
   * While the server is unreachable it keeps trying (bound it with your own timeout).
   */
  start(): Promise<void> {
    if (this.startPromise) return this.startPromise;
    if (this.stopped) return Promise.reject(new ChatError("CLIENT_CLOSED", "the client was stopped"));
    this.startPromise = new Promise<void>((resolve, reject) => {
      this.startSettle = { resolve, reject };
    });
    this.setState("connecting");
    void this.boot();
    return this.startPromise;
  }

  private async boot(): Promise<void> {
    for (let attempt = 0; ; attempt++) {
      try {
        await this.load();
        break;
      } catch (error) {
        if (this.stopped) return;
        // The server answered (no couple, a refused token): final. Unreachable: try again.
        if (error instanceof HttpError && error.status < 500 && error.status !== 429) {
          this.fail(error);
          return;
        }
        const delay = this.backoff.delay(attempt);
        this.setState("connecting", delay);
        await new Promise<void>((resolve) => {
          this.reconnectTimer = setTimeout(resolve, delay);
        });
        if (this.stopped) return;
      }
    }
    if (!this.stopped) void this.connect();
  }

  /** The couple id (GET /chat/room when not given), the last seq and the outbox from storage. */
  private load(): Promise<void> {
    if (!this.loaded) {
      this.loaded = (async () => {
        if (this._coupleId === null) this._coupleId = (await this.api.room()).id;
        const coupleId = this._coupleId;
        if (this.resumeEnabled) {
          const stored = await this.storage.getLastSeq(coupleId);
          this._lastSeq = stored ?? this.options.resumeAfterSeq ?? this._lastSeq;
        }
        for (const item of await this.storage.listPending(coupleId)) {
          if (!this.outbox.has(item.tempId)) this.outbox.set(item.tempId, this.newEntry(item));
          this.lastCreatedAt = Math.max(this.lastCreatedAt, item.createdAt);
        }
      })();
      this.loaded.catch(() => {
        this.loaded = null;
      });
    }
    return this.loaded;
  }

  private fail(error: Error): void {
    const settle = this.startSettle;
    this.startSettle = null;
    this.shutdown(new ChatError("CLIENT_CLOSED", error.message));
    settle?.reject(error);
  }

  /** DISCONNECT and stop reconnecting; the outbox stays in storage for the next client. */
  async stop(): Promise<void> {
    if (this.stopped) {
      await this.storageChain.catch(() => undefined);
      return;
    }
    const session = this.session;
    this.shutdown(new ChatError("CLIENT_CLOSED", "the client was stopped before the RECEIPT"));
    if (session) await this.closeSession(session, true);
    this.startSettle?.reject(new ChatError("CLIENT_CLOSED", "the client was stopped"));
    this.startSettle = null;
    await this.storageChain.catch(() => undefined);
  }

  private shutdown(reason: ChatError): void {
    this.stopped = true;
    clearTimeout(this.reconnectTimer);
    clearTimeout(this.flushTimer);
    for (const timer of this.typingTimers.values()) clearTimeout(timer);
    this.typingTimers.clear();
    const session = this.session;
    if (session) {
      this.endSessionTimers(session);
      session.ended = true;
      if (!session.ready) void session.stomp.deactivate({ force: true }).catch(() => undefined);
    }
    for (const entry of this.outbox.values()) {
      clearTimeout(entry.confirmTimer);
      for (const waiter of entry.waiters.splice(0)) waiter.reject(reason);
    }
    this.outbox.clear();
    if (this._state !== "closed") this.setState("closed");
  }

  private async closeSession(session: Session, polite: boolean): Promise<void> {
    this.endSessionTimers(session);
    session.ended = true;
    try {
      if (polite && session.stomp.connected) {
        await Promise.race([
          session.stomp.deactivate(),
          new Promise((resolve) => setTimeout(resolve, 1000)),
        ]);
      }
    } catch {
      // closing anyway
    }
    await session.stomp.deactivate({ force: true }).catch(() => undefined);
  }

  private endSessionTimers(session: Session): void {
    clearTimeout(session.connectTimer);
    clearTimeout(session.refreshTimer);
  }

  /** Drop the connection as a network failure would; the client reconnects and resumes. */
  reconnect(): void {
    const session = this.session;
    if (session && !session.ended) this.sessionEnded(session, { immediate: true, force: true });
  }

  /**
   * Subscribe to the couple's stream again, replaying what follows `afterSeq` (default: the
   * last seq delivered). Entries already delivered are dropped by seq, so this never
   * duplicates; the previous subscription stays until the new one is in place.
   */
  resync(afterSeq?: number): void {
    const session = this.session;
    if (!session || !session.ready || session.ended) return;
    this.subscribeTopic(session, afterSeq ?? this._lastSeq, true);
  }

  // -- connecting -------------------------------------------------------------------------

  private nextId(prefix: string): string {
    this.ids += 1;
    return `${prefix}-${this.generation}-${this.ids}`;
  }

  private async connect(forceTransport?: TransportKind): Promise<void> {
    if (this.stopped) return;
    const generation = ++this.generation;
    let token: string;
    try {
      token = await this.options.token();
      if (typeof token !== "string" || !token) throw new TypeError("the token provider must return a non-empty string");
    } catch (error) {
      if (this.stopped || generation !== this.generation) return;
      this.emit("error", { code: "TOKEN_PROVIDER", message: String(error instanceof Error ? error.message : error) });
      this.scheduleReconnect(false);
      return;
    }
    if (this.stopped || generation !== this.generation) return;
    const claims = decodeJwt(token);
    if (claims && typeof claims.sub === "string") this._userId = claims.sub;

    const mode = this.options.transport ?? "auto";
    let transport: TransportKind =
      forceTransport ?? (mode === "sockjs" || (mode === "auto" && this.preferSockjs) ? "sockjs" : "websocket");
    if (transport === "websocket" && !this.webSocketCtor()) {
      if (mode !== "auto") {
        this.fail(new ChatError("NO_WEBSOCKET", "no WebSocket constructor here: pass options.webSocket"));
        return;
      }
      transport = "sockjs";
    }
    const headers: Record<string, string> = { Authorization: `Bearer ${token}` };
    if (this.options.deviceId !== undefined) headers["x-device-id"] = this.options.deviceId;
    const [outgoing, incoming] = this.options.heartbeatMs ?? [10_000, 10_000];
    const rn = isReactNative();

    const session: Session = {
      generation,
      stomp: undefined as unknown as Client,
      transport,
      opened: false,
      ready: false,
      ended: false,
      topicSubs: new Map(),
    };
    const stomp = new Client({
      webSocketFactory: () => this.openSocket(session),
      connectHeaders: headers,
      reconnectDelay: 0,
      heartbeatOutgoing: outgoing,
      heartbeatIncoming: incoming,
      discardWebsocketOnCommFailure: true,
      appendMissingNULLonIncoming: rn,
      forceBinaryWSFrames: false,
      debug: () => undefined,
      onConnect: (frame) => this.onConnected(session, frame),
      onStompError: (frame) => this.onStompError(session, frame),
      onWebSocketClose: () => this.onSocketClosed(session),
    });
    session.stomp = stomp;
    this.session = session;
    this._transport = transport;
    session.connectTimer = setTimeout(() => {
      if (!session.ready && !session.ended) this.sessionEnded(session, { force: true });
    }, this.options.connectTimeoutMs ?? 15_000);
    session.refreshTimer = this.refreshTimer(session, claims?.exp, claims?.iat);
    stomp.activate();
  }

  private openSocket(session: Session): WebSocket {
    const mark = () => {
      session.opened = true;
    };
    let socket: WebSocket;
    if (session.transport === "sockjs") {
      const sockOptions: Record<string, unknown> = {};
      if (this.options.sockjsTransports) sockOptions.transports = this.options.sockjsTransports;
      socket = new SockJS(`${this.baseUrl}/ws/chat`, undefined, sockOptions) as unknown as WebSocket;
    } else {
      const Ctor = this.webSocketCtor() as typeof WebSocket;
      socket = new Ctor(`${toWebSocketUrl(this.baseUrl)}/ws/chat`, ["v12.stomp", "v11.stomp", "v10.stomp"]);
    }
    if (typeof socket.addEventListener === "function") socket.addEventListener("open", mark);
    return socket;
  }

  private webSocketCtor(): typeof WebSocket | undefined {
    return this.options.webSocket ?? (globalThis as { WebSocket?: typeof WebSocket }).WebSocket;
  }

  /** Reconnect with a fresh token shortly before `exp` (a tenth of its life, 1 s to 60 s early). */
  private refreshTimer(session: Session, exp?: number, iat?: number): ReturnType<typeof setTimeout> | undefined {
    if (typeof exp !== "number") return undefined;
    const now = Date.now();
    const life = typeof iat === "number" ? (exp - iat) * 1000 : exp * 1000 - now;
    const early = Math.min(60_000, Math.max(1000, life / 10));
    const wait = Math.max(1000, exp * 1000 - early - now);
    if (wait > 2 ** 31 - 1) return undefined;
    return setTimeout(() => {
      if (session.ended || this.stopped) return;
      this.sessionEnded(session, { immediate: true, polite: true });
    }, wait);
  }

  private onConnected(session: Session, frame: IFrame): void {
    if (session.ended || session !== this.session) return;
    const name = frame.headers["user-name"];
    if (name) this._userId = name;
    const stomp = session.stomp;
    const errorsId = this.nextId("errors");
    stomp.subscribe("/user/queue/errors", (m) => this.onErrorPayload(session, m), { id: errorsId });
    const eventsId = this.nextId("events");
    stomp.subscribe("/user/queue/events", (m) => this.onStreamPayload(session, m), { id: eventsId });
    this.subscribeTopic(session, this._lastSeq, false);
  }

  /**
   * SUBSCRIBE the couple's topic (resuming after `after` when resume is on); the first one is
   * ready at its RECEIPT. The subscriptions it replaces end at once, or with `keepOld` at
   * that RECEIPT (meanwhile both deliver, and the seq check drops what comes twice).
   */
  private subscribeTopic(session: Session, after: number | null, keepOld: boolean): void {
    const id = this.nextId("topic");
    const headers: Record<string, string> = { id, receipt: id };
    if (this.resumeEnabled && after !== null) headers["x-resume-after-seq"] = String(after);
    const dropOthers = () => {
      for (const [other, sub] of [...session.topicSubs]) {
        if (other === id) continue;
        session.topicSubs.delete(other);
        try {
          sub.unsubscribe();
        } catch {
          // the connection is going away
        }
      }
    };
    if (!keepOld) dropOthers();
    session.stomp.watchForReceipt(id, (frame) => {
      if (session.ended || session !== this.session) return;
      this.startAfter(frame.headers["x-last-seq"]);
      if (keepOld && session.topicSubs.has(id)) dropOthers();
      if (!session.ready) this.onReady(session);
    });
    const sub = session.stomp.subscribe(
      `/topic/couple/${this._coupleId}`,
      (m) => {
        if (session.topicSubs.has(id)) this.onStreamPayload(session, m);
      },
      headers,
    );
    session.topicSubs.set(id, sub);
  }

  /**
   * A live-only start (no seq known) learns from the topic's RECEIPT (`x-last-seq`) which seq
   * its stream starts after, so that the next SUBSCRIBE after a drop resumes from there and
   * misses nothing sent meanwhile. A known seq is never changed by it.
   */
  private startAfter(value: string | undefined): void {
    if (this._lastSeq !== null || value === undefined || !/^\d{1,15}$/.test(value)) return;
    const seq = Number(value);
    this._lastSeq = seq;
    if (this.resumeEnabled && this._coupleId) {
      const coupleId = this._coupleId;
      void this.store(() => this.storage.setLastSeq(coupleId, seq));
    }
  }

  private onReady(session: Session): void {
    session.ready = true;
    clearTimeout(session.connectTimer);
    this.attempt = 0;
    if (session.transport === "sockjs" && (this.options.transport ?? "auto") === "auto") this.preferSockjs = true;
    if (session.transport === "websocket") this.webSocketWorked = true;
    this.everReady = true;
    this.stats.connects += 1;
    this.setState("connected");
    const settle = this.startSettle;
    this.startSettle = null;
    settle?.resolve();
    this.flush();
  }

  private onStompError(session: Session, frame: IFrame): void {
    if (session.ended || session !== this.session) return;
    const payload = parseError(frame.body, frame.headers.message || "ERROR");
    payload.fatal = true;
    this.emit("error", payload);
    if (ENDED.has(payload.code)) {
      this.fail(ChatError.from(payload));
      void this.closeSession(session, false);
      return;
    }
    if (!this.everReady && FATAL_AT_START.has(payload.code)) {
      this.fail(ChatError.from(payload));
      void this.closeSession(session, false);
      return;
    }
    // TOKEN_EXPIRED, SERVER_SHUTDOWN: reconnect at once (a fresh token); others back off.
    const immediate = payload.code === "TOKEN_EXPIRED" || payload.code === "SERVER_SHUTDOWN";
    this.sessionEnded(session, { immediate, force: true });
  }

  private onSocketClosed(session: Session): void {
    if (session.ended || session !== this.session) return;
    const mode = this.options.transport ?? "auto";
    if (mode === "auto" && session.transport === "websocket" && !session.opened && !this.webSocketWorked) {
      // The WebSocket could not open, and never has (a proxy that refuses upgrades): SockJS
      // at once. Once it has worked, a failure to open is the server being away: back off.
      this.sessionEnded(session, { fallback: true });
      return;
    }
    this.sessionEnded(session, {});
  }

  /** The session is over: close it, then reconnect (unless stopped). */
  private sessionEnded(
    session: Session,
    how: { immediate?: boolean; force?: boolean; polite?: boolean; fallback?: boolean },
  ): void {
    if (session.ended) return;
    const wasReady = session.ready;
    void this.closeSession(session, how.polite ?? false);
    if (this.session === session) this.session = null;
    if (this.stopped) return;
    if (how.fallback) {
      this.stats.fallbacks += 1;
      void this.connect("sockjs");
      return;
    }
    if (wasReady) this.attempt = 0;
    this.scheduleReconnect(how.immediate ?? false);
  }

  private scheduleReconnect(immediate: boolean): void {
    if (this.stopped) return;
    clearTimeout(this.reconnectTimer);
    const delay = immediate ? 0 : this.backoff.delay(this.attempt);
    this.attempt += 1;
    this.setState(this.everReady ? "reconnecting" : "connecting", delay);
    this.reconnectTimer = setTimeout(() => void this.connect(), delay);
  }

  // -- receiving --------------------------------------------------------------------------

  private onStreamPayload(session: Session, message: IMessage): void {
    if (session.ended || session !== this.session) return;
    let data: unknown;
    try {
      data = JSON.parse(message.body);
    } catch {
      return;
    }
    if (!isObject(data)) return;
    const seq = typeof data.seq === "number" && Number.isInteger(data.seq) ? data.seq : null;
    if (seq === null) {
      this.dispatch(data);
      return;
    }
    const last = this._lastSeq;
    if (last !== null && seq <= last) {
      this.stats.duplicatesDropped += 1; // delivered already
      return;
    }
    if (last !== null && seq > last + 1 && this.resumeEnabled) {
      this.stats.gaps += 1;
      // Something was missed: replay from the last seq (the server keeps the stream).
      this.subscribeTopic(session, last, false);
      return;
    }
    this._lastSeq = seq;
    this.dispatch(data);
    if (this.resumeEnabled && this._coupleId) {
      const coupleId = this._coupleId;
      void this.store(() => this.storage.setLastSeq(coupleId, seq));
    }
  }

  /** What each stream entry that is not a chat message becomes, by its `type`. */
  private readonly streamEvents: Record<StreamEventType, (data: Record<string, unknown>) => void> = {
    MESSAGE_EDITED: (data) => this.emit("edited", data as unknown as MessageEdited),
    MESSAGE_UNSENT: (data) => this.emit("unsent", data as unknown as MessageUnsent),
    REACTION: (data) => this.emit("reaction", data as unknown as ReactionChanged),
    MESSAGE_DELETED: (data) => this.emit("deleted", data as unknown as MessageDeleted),
    READ_RECEIPT: (data) => this.emit("read", data as unknown as ReadReceipt),
    SYSTEM: (data) => this.onSystem(data as unknown as SystemEvent),
    ERROR: (data) => this.emit("error", data as unknown as ErrorPayload),
  };

  private dispatch(data: Record<string, unknown>): void {
    const type = data.type;
    if (typeof type !== "string") return; // neither an event nor a message
    // Own keys only: a `type` such as "constructor" is not an event.
    if (Object.prototype.hasOwnProperty.call(this.streamEvents, type)) {
      this.streamEvents[type as StreamEventType](data);
      return;
    }
    if (typeof data.id === "string" && typeof data.seq === "number") {
      const message = data as unknown as ChatMessage;
      this.emit("message", message);
      this.onOwnMessage(message);
    }
    // else: a newer server's kind of event; its seq was counted.
  }

  private onSystem(event: SystemEvent): void {
    const userId = event.userId ?? null;
    if (event.event === "TYPING" && userId) {
      const typing = event.typing === true;
      this.emit("typing", { userId, typing });
      const timeout = this.options.typingTimeoutMs ?? 6000;
      clearTimeout(this.typingTimers.get(userId));
      this.typingTimers.delete(userId);
      if (typing && timeout > 0) {
        this.typingTimers.set(
          userId,
          setTimeout(() => {
            this.typingTimers.delete(userId);
            this.emit("typing", { userId, typing: false });
          }, timeout),
        );
      }
    } else if ((event.event === "USER_CONNECTED" || event.event === "USER_DISCONNECTED") && userId) {
      this.emit("presence", { userId, online: event.event === "USER_CONNECTED" });
    } else {
      this.emit("system", event);
    }
  }

  private onErrorPayload(session: Session, message: IMessage): void {
    if (session.ended || session !== this.session) return;
    const payload = parseError(message.body, "ERROR");
    const tempId = payload.tempId ?? null;
    const entry = tempId !== null ? this.outbox.get(tempId) : undefined;
    if (!entry || entry.acked) {
      if (!session.ready && (payload.code === "NOT_FOUND" || payload.code === "UNAUTHORIZED") && tempId === null) {
        // The topic SUBSCRIBE was refused: not a member, or the couple is gone.
        this.emit("error", payload);
        if (!this.everReady) {
          this.fail(ChatError.from(payload));
          void this.closeSession(session, false);
        } else {
          this.sessionEnded(session, {});
        }
        return;
      }
      this.emit("error", payload);
      return;
    }
    if (isTransient(payload.code, payload.detail) && entry.retries < MAX_SEND_RETRIES) {
      // Back off the whole outbox, then write it again (same tempId).
      this.emit("error", payload);
      entry.retries += 1;
      entry.writtenOn = null;
      entry.receiptId = null;
      const now = Date.now();
      if (now >= this.pausedUntil) this.pausedUntil = now + 250 + this.retryBackoff.delay(entry.retries - 1);
      entry.notBefore = this.pausedUntil;
      this.scheduleFlush(this.pausedUntil - now);
      return;
    }
    const error = new SendError(payload.code, entry.item.tempId, payload.detail || payload.message, payload);
    this.removeEntry(entry);
    this.emit("failed", error);
    for (const waiter of entry.waiters.splice(0)) waiter.reject(error);
  }

  // -- the outbox -------------------------------------------------------------------------

  private newEntry(item: PendingSend): Entry {
    return { item, waiters: [], writtenOn: null, receiptId: null, notBefore: 0, retries: 0, acked: false, confirmAttempts: 0 };
  }

  /** Storage writes, one at a time and in order (a removal never overtakes the put before it). */
  private store<T>(op: () => Promise<T>): Promise<T> {
    const next = this.storageChain.then(op, op);
    this.storageChain = next.catch(() => undefined);
    return next;
  }

  private async coupleForSend(): Promise<string> {
    if (this._coupleId !== null) return this._coupleId;
    if (!this.startPromise) throw new ChatError("NOT_STARTED", "call start() first, or give coupleId");
    await this.load();
    return this._coupleId as unknown as string;
  }

  private async submit(kind: PendingKind, body: Record<string, unknown>, tempId: string): Promise<ChatMessage | undefined> {
    if (this.stopped) throw new ChatError("CLIENT_CLOSED", "the client was stopped");
    const coupleId = await this.coupleForSend();
    // What storage holds goes first (a reload's entries are older than this one).
    await this.load().catch(() => undefined);
    const existing = this.outbox.get(tempId);
    if (existing) {
      return new Promise((resolve, reject) => existing.waiters.push({ resolve, reject }));
    }
    const createdAt = Math.max(Date.now(), this.lastCreatedAt + 1);
    this.lastCreatedAt = createdAt;
    const item: PendingSend = { tempId, kind, body, createdAt, attempts: 0 };
    // Stored before it is written: a reload from here on re-sends it.
    await this.store(() => this.storage.putPending(coupleId, item));
    if (this.stopped) throw new ChatError("CLIENT_CLOSED", "the client was stopped (the send stays in storage)");
    const entry = this.newEntry(item);
    const done = new Promise<ChatMessage | undefined>((resolve, reject) => entry.waiters.push({ resolve, reject }));
    this.outbox.set(tempId, entry);
    this.flush();
    return done;
  }

  private scheduleFlush(delay: number): void {
    clearTimeout(this.flushTimer);
    this.flushTimer = setTimeout(() => this.flush(), Math.max(0, delay));
  }

  /** Write every entry not yet written on this connection, oldest first. */
  private flush(): void {
    const session = this.session;
    if (!session || !session.ready || session.ended || this.stopped) return;
    const now = Date.now();
    if (now < this.pausedUntil) {
      this.scheduleFlush(this.pausedUntil - now);
      return;
    }
    let nextDue: number | null = null;
    for (const entry of this.outbox.values()) {
      if (entry.acked || entry.writtenOn === session.generation) continue;
      if (entry.notBefore > now) {
        nextDue = nextDue === null ? entry.notBefore : Math.min(nextDue, entry.notBefore);
        continue;
      }
      this.write(session, entry);
    }
    if (nextDue !== null) this.scheduleFlush(nextDue - now);
  }

  private write(session: Session, entry: Entry): void {
    const receiptId = this.nextId("s");
    entry.writtenOn = session.generation;
    entry.receiptId = receiptId;
    entry.item.attempts += 1;
    if (entry.item.attempts > 1) this.stats.resent += 1;
    const coupleId = this._coupleId as string;
    const snapshot: PendingSend = { ...entry.item };
    void this.store(() => (this.outbox.get(snapshot.tempId) === entry && !entry.acked ? this.storage.putPending(coupleId, snapshot) : Promise.resolve()));
    session.stomp.watchForReceipt(receiptId, () => {
      if (entry.receiptId === receiptId && this.outbox.get(entry.item.tempId) === entry) this.onAcked(entry);
    });
    try {
      session.stomp.publish({
        destination: `/app/chat/${coupleId}${SUFFIX[entry.item.kind]}`,
        headers: { receipt: receiptId, "content-type": "application/json" },
        body: JSON.stringify(entry.item.body),
      });
    } catch {
      // The connection went away under us: the next one writes it.
      entry.writtenOn = null;
      entry.receiptId = null;
    }
  }

  private removeEntry(entry: Entry): void {
    clearTimeout(entry.confirmTimer);
    if (this.outbox.get(entry.item.tempId) === entry) this.outbox.delete(entry.item.tempId);
    const coupleId = this._coupleId;
    if (coupleId !== null && !entry.acked) {
      void this.store(() => this.storage.removePending(coupleId, entry.item.tempId));
    }
  }

  /** Its RECEIPT: stored for good. A message then waits for its broadcast (or asks REST for it). */
  private onAcked(entry: Entry): void {
    if (entry.acked) return;
    const coupleId = this._coupleId as string;
    void this.store(() => this.storage.removePending(coupleId, entry.item.tempId));
    entry.acked = true;
    if (entry.item.kind !== "message" || entry.message) {
      this.finish(entry);
      return;
    }
    this.confirmLater(entry, CONFIRM_AFTER_MS);
  }

  private confirmLater(entry: Entry, delay: number): void {
    clearTimeout(entry.confirmTimer);
    entry.confirmTimer = setTimeout(() => void this.confirmByRest(entry), delay);
  }

  /** The broadcast did not come (a connection lost meanwhile, resume off): the REST send with the same tempId answers the stored message. */
  private async confirmByRest(entry: Entry): Promise<void> {
    if (this.stopped || this.outbox.get(entry.item.tempId) !== entry || entry.message) return;
    try {
      const message = await this.api.send(this._coupleId as string, entry.item.body as unknown as SendRequest & { tempId: string });
      if (this.outbox.get(entry.item.tempId) !== entry) return;
      entry.message = message;
      this.finish(entry);
    } catch {
      entry.confirmAttempts += 1;
      this.confirmLater(entry, this.retryBackoff.ceiling(entry.confirmAttempts));
    }
  }

  private onOwnMessage(message: ChatMessage): void {
    if (message.tempId === null || message.tempId === undefined) return;
    if (this._userId !== null && message.senderId !== this._userId) return;
    const entry = this.outbox.get(message.tempId);
    if (!entry || entry.item.kind !== "message") return;
    entry.message = message;
    if (!entry.acked) {
      // Broadcast after its commit: as good as the RECEIPT (which may still come, unneeded).
      this.onAcked(entry);
      return;
    }
    this.finish(entry);
  }

  private finish(entry: Entry): void {
    clearTimeout(entry.confirmTimer);
    if (this.outbox.get(entry.item.tempId) === entry) this.outbox.delete(entry.item.tempId);
    const sent: ChatEvents["sent"] = { tempId: entry.item.tempId };
    if (entry.message) sent.message = entry.message;
    this.emit("sent", sent);
    for (const waiter of entry.waiters.splice(0)) waiter.resolve(entry.message);
  }

  // -- sending ----------------------------------------------------------------------------

  /**
   * Send a message through the outbox: stored before it is written, re-sent with the same
   * tempId after every reconnect until its RECEIPT, kept across reloads (a new ChatClient
   * over the same storage sends it). Resolves with the stored message; rejects with
   * SendError when the server refuses it (it is then removed from the outbox).
   */
  async send(request: SendRequest & { tempId?: string }): Promise<ChatMessage> {
    const tempId = request.tempId ?? timeOrderedId();
    const message = await this.submit("message", sendBody(request, tempId), tempId);
    return message as ChatMessage;
  }

  sendText(content: string, options: { replyTo?: string } = {}): Promise<ChatMessage> {
    const request: SendRequest = { type: "TEXT", content };
    if (options.replyTo !== undefined) request.replyTo = options.replyTo;
    return this.send(request);
  }

  /** The outbox entries not yet acknowledged, oldest first. */
  async pending(): Promise<PendingSend[]> {
    const coupleId = await this.coupleForSend();
    await this.storageChain;
    return this.storage.listPending(coupleId);
  }

  /** Drop an outbox entry (e.g. a user cancels a send); its promise rejects with DISCARDED. */
  async discard(tempId: string): Promise<void> {
    const coupleId = await this.coupleForSend();
    const entry = this.outbox.get(tempId);
    if (entry) {
      clearTimeout(entry.confirmTimer);
      this.outbox.delete(tempId);
      const error = new SendError("DISCARDED", tempId, "discarded before its RECEIPT");
      for (const waiter of entry.waiters.splice(0)) waiter.reject(error);
    }
    await this.store(() => this.storage.removePending(coupleId, tempId));
  }

  /** Edit one of this member's TEXT messages (through the outbox). */
  async edit(messageId: string, content: string): Promise<void> {
    const tempId = timeOrderedId();
    await this.submit("edit", { messageId, content, tempId }, tempId);
  }

  /** Unsend one of this member's messages (through the outbox). */
  async unsend(messageId: string): Promise<void> {
    const tempId = timeOrderedId();
    await this.submit("unsend", { messageId, tempId }, tempId);
  }

  /** Delete a message for this member only (through the outbox). */
  async deleteForMe(messageId: string): Promise<void> {
    const tempId = timeOrderedId();
    await this.submit("delete", { messageId, tempId }, tempId);
  }

  /** Add or remove one emoji (through the outbox). */
  async react(messageId: string, emoji: string, op: "add" | "remove"): Promise<void> {
    const tempId = timeOrderedId();
    await this.submit("react", { messageId, emoji, op, tempId }, tempId);
  }

  /** Mark the partner's messages read; best effort (not queued: nothing when not connected). */
  markRead(upTo: { upToSeq: number } | { messageIds: string[] }): void {
    this.publishNow("/read", upTo);
  }

  /** Tell the partner this member is (not) typing; best effort. */
  typing(typing: boolean): void {
    this.publishNow("/typing", { typing: Boolean(typing) });
  }

  private publishNow(suffix: string, body: unknown): void {
    const session = this.session;
    if (!session || !session.ready || session.ended) return;
    try {
      session.stomp.publish({
        destination: `/app/chat/${this._coupleId}${suffix}`,
        headers: { "content-type": "application/json" },
        body: JSON.stringify(body),
      });
    } catch {
      // the connection is going away: best effort
    }
  }
}
