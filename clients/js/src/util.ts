/** Small helpers without dependencies (they run in browsers, React Native and Node). */

const B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/** Decodes base64 or base64url (padding optional) to a UTF-8 string. */
export function decodeBase64Url(text: string): string {
  const clean = text.replace(/-/g, "+").replace(/_/g, "/").replace(/=+$/, "");
  const bytes: number[] = [];
  let buffer = 0;
  let bits = 0;
  for (const ch of clean) {
    const value = B64.indexOf(ch);
    if (value < 0) throw new Error("not base64");
    buffer = (buffer << 6) | value;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      bytes.push((buffer >> bits) & 0xff);
    }
  }
  // UTF-8 without TextDecoder (absent from some React Native engines).
  return decodeURIComponent(bytes.map((b) => `%${b.toString(16).padStart(2, "0")}`).join(""));
}

/** The claims of a JWT, read without checking its signature (the server checks it). */
export interface TokenClaims {
  sub?: string;
  exp?: number;
  iat?: number;
  [claim: string]: unknown;
}

export function decodeJwt(token: string): TokenClaims | null {
  const parts = token.split(".");
  if (parts.length < 2 || !parts[1]) return null;
  try {
    const claims: unknown = JSON.parse(decodeBase64Url(parts[1]));
    return claims && typeof claims === "object" ? (claims as TokenClaims) : null;
  } catch {
    return null;
  }
}

/**
 * A time-ordered UUID (version 7, RFC 9562): the Unix time in milliseconds in its first 48
 * bits, then 74 random bits, so ids made a millisecond or more apart sort, as text, in the
 * order they were made. A tempId is one: the server's index of a sender's tempIds then grows
 * at its end instead of at a random page. Random bits from getRandomValues where there is
 * one (browsers, Node, React Native with a polyfill), else Math.random.
 */
export function timeOrderedId(): string {
  const c = (globalThis as { crypto?: Crypto }).crypto;
  const bytes = new Uint8Array(16);
  if (c && typeof c.getRandomValues === "function") c.getRandomValues(bytes);
  else for (let i = 0; i < 16; i++) bytes[i] = Math.floor(Math.random() * 256);
  let millis = Date.now();
  for (let i = 5; i >= 0; i--) {
    bytes[i] = millis % 256;
    millis = Math.floor(millis / 256);
  }
  bytes[6] = (bytes[6]! & 0x0f) | 0x70;
  bytes[8] = (bytes[8]! & 0x3f) | 0x80;
  const hex = Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

/** `baseUrl` without a trailing slash. */
export function trimBase(baseUrl: string): string {
  return baseUrl.replace(/\/+$/, "");
}

/** `http(s)://host/…` -> `ws(s)://host/…`. */
export function toWebSocketUrl(httpUrl: string): string {
  return httpUrl.replace(/^http(s?):\/\//i, (_m, s: string) => `ws${s}://`);
}
