/**
 * The errors the SDK raises: {@link ChatError} (a code of the server's, or of the SDK's own:
 * `CLIENT_CLOSED`, `DISCARDED`, `NOT_STARTED`), {@link SendError} (an outbox entry refused)
 * and {@link HttpError} (a REST call refused).
 *
 * @module
 */

import type { ErrorPayload } from "./types.js";

/** An error with the server's code (`AUTH_FAILED`, `NOT_FOUND`, ...) or one of the SDK's. */
export class ChatError extends Error {
  /** The server's error code, or `CLIENT_CLOSED` / `DISCARDED` / `NOT_STARTED` / `UNEXPECTED`. */
  code: string;
  /** What the server said was wrong (English), when it said. */
  detail?: string | null;

  constructor(code: string, message?: string, detail?: string | null) {
    super(message ? `${code}: ${message}` : code);
    this.name = "ChatError";
    this.code = code;
    this.detail = detail;
  }

  /** The error of a server's error payload. */
  static from(payload: ErrorPayload): ChatError {
    return new ChatError(payload.code, payload.detail || payload.message, payload.detail);
  }
}

/** The server refused an outbox entry for good (SEND_FAILED, NOT_FOUND, FORBIDDEN, ...). */
export class SendError extends ChatError {
  /** The refused entry's tempId. */
  tempId: string;
  /** The server's error payload, when the server refused it. */
  payload?: ErrorPayload;

  constructor(code: string, tempId: string, message?: string, payload?: ErrorPayload) {
    super(code, message, payload?.detail);
    this.name = "SendError";
    this.tempId = tempId;
    this.payload = payload;
  }
}

/** A REST call answered with an error status. */
export class HttpError extends ChatError {
  status: number;
  /** The answer's body: the server's error JSON, or text. */
  body: unknown;
  /** Seconds, from `Retry-After` (429, 503). */
  retryAfter?: number;

  constructor(status: number, code: string, body: unknown, retryAfter?: number) {
    const detail =
      body && typeof body === "object" && "detail" in body && typeof body.detail === "string"
        ? body.detail
        : typeof body === "string"
          ? body.slice(0, 200)
          : undefined;
    super(code, `HTTP ${status}${detail ? ` ${detail}` : ""}`, detail);
    this.name = "HttpError";
    this.status = status;
    this.body = body;
    if (retryAfter !== undefined) this.retryAfter = retryAfter;
  }
}
