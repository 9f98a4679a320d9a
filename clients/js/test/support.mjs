// Test support: a real ieum-chat server in a child process (a temp SQLite file, a free port,
// a known JWT secret and service key), tokens minted here (HS256, node:crypto), users and a
// couple made over the service API, and waiting helpers (bounded: a guard, never a timing).
import { spawn } from "node:child_process";
import { createHmac, randomUUID } from "node:crypto";
import { existsSync, mkdtempSync, rmSync, openSync, closeSync, readFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { deflateSync } from "node:zlib";

const here = dirname(fileURLToPath(import.meta.url));
export const packageRoot = resolve(here, "..");
export const repoRoot = resolve(packageRoot, "../..");
export const JWT_SECRET = "ieum-chat-js-sdk-test-secret-0123456789";
export const ADMIN_KEY = "js-sdk-tests-admin-key-0123456789";

/** The server command: IEUM_CHAT_BIN, else the repository's virtualenv. */
export function serverBin() {
  const bin = process.env.IEUM_CHAT_BIN || join(repoRoot, ".venv/bin/ieum-chat");
  if (!existsSync(bin)) {
    throw new Error(
      `no ieum-chat server at ${bin}: create the repository's .venv (make venv) or set IEUM_CHAT_BIN`,
    );
  }
  return bin;
}

export function freePort() {
  return new Promise((resolvePort, reject) => {
    const srv = createServer();
    srv.once("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const { port } = srv.address();
      srv.close(() => resolvePort(port));
    });
  });
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Polls `predicate` until true; fails naming `what` after `timeoutMs` (a guard). */
export async function waitFor(predicate, what, timeoutMs = 20_000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await predicate()) return;
    if (Date.now() > deadline) throw new Error(`gave up waiting for ${what}`);
    await sleep(25);
  }
}

/** A promise with a guard: rejects naming `what` when it has not settled in `timeoutMs`. */
export function within(promise, what, timeoutMs = 20_000) {
  let timer;
  const guard = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`gave up waiting for ${what}`)), timeoutMs);
  });
  return Promise.race([promise, guard]).finally(() => clearTimeout(timer));
}

/**
 * One ieum-chat server process over its own temp directory (database, uploads, log); it
 * can be stopped and started again on the same port and database.
 */
export class ChatServer {
  constructor(extraEnv = {}) {
    this.dir = mkdtempSync(join(tmpdir(), "ieum-chat-js-"));
    this.extraEnv = extraEnv;
    this.proc = null;
    this.port = null;
    this.logPath = join(this.dir, "server.log");
  }

  get url() {
    return `http://127.0.0.1:${this.port}`;
  }

  async start() {
    if (this.port === null) this.port = await freePort();
    const env = {
      ...process.env,
      IEUM_DATABASE_URL: `sqlite:///${join(this.dir, "chat.db")}`,
      IEUM_JWT_SECRET: JWT_SECRET,
      IEUM_ADMIN_API_KEYS: `tests:${ADMIN_KEY}`,
      IEUM_UPLOAD_DIR: join(this.dir, "uploads"),
      IEUM_PUBLIC_URL: `http://127.0.0.1:${this.port}`,
      IEUM_SHUTDOWN_GRACE: "2",
      ...this.extraEnv,
    };
    const log = openSync(this.logPath, "a");
    this.proc = spawn(serverBin(), ["serve", "--host", "127.0.0.1", "--port", String(this.port)], {
      env,
      stdio: ["ignore", log, log],
    });
    closeSync(log);
    const proc = this.proc;
    let exited = false;
    proc.once("exit", () => {
      exited = true;
    });
    const deadline = Date.now() + 60_000;
    for (;;) {
      if (exited) throw new Error(`the server exited at start:\n${this.log().slice(-3000)}`);
      try {
        const res = await fetch(`${this.url}/healthz`);
        if (res.ok) return this;
      } catch {
        // not listening yet
      }
      if (Date.now() > deadline) throw new Error(`the server did not start:\n${this.log().slice(-3000)}`);
      await sleep(100);
    }
  }

  /** Stops the process (SIGKILL: as a crash; SIGTERM: a graceful stop) and waits for it. */
  async stop(signal = "SIGTERM") {
    const proc = this.proc;
    if (!proc) return;
    this.proc = null;
    if (proc.exitCode !== null || proc.signalCode !== null) return;
    const exited = new Promise((r) => proc.once("exit", r));
    proc.kill(signal);
    await within(exited, `the server (pid ${proc.pid}) to exit after ${signal}`, 30_000);
  }

  log() {
    return existsSync(this.logPath) ? readFileSync(this.logPath, "utf8") : "";
  }

  async dispose() {
    await this.stop("SIGTERM").catch(async () => this.stop("SIGKILL"));
    rmSync(this.dir, { recursive: true, force: true });
  }

  async admin(method, path, body) {
    const res = await fetch(`${this.url}/admin/v1${path}`, {
      method,
      headers: { Authorization: `Bearer ${ADMIN_KEY}`, "Content-Type": "application/json" },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await res.text();
    if (!res.ok) throw new Error(`admin ${method} ${path}: ${res.status} ${text}`);
    return text ? JSON.parse(text) : null;
  }

  /** Two users and their couple: { coupleId, a: { id, token }, b: { id, token } }. */
  async couple() {
    const a = randomUUID();
    const b = randomUUID();
    await this.admin("PUT", `/users/${a}`, { name: "민지" });
    await this.admin("PUT", `/users/${b}`, { name: "준호" });
    const couple = await this.admin("POST", "/couples", { userIds: [a, b] });
    return {
      coupleId: couple.id,
      a: { id: a, token: () => mintToken(a) },
      b: { id: b, token: () => mintToken(b) },
    };
  }
}

const b64url = (data) => Buffer.from(data).toString("base64url");

/** An HS256 JWT for `sub`, valid `ttlSeconds` (signed with `secret`: another one forges it). */
export function mintToken(sub, ttlSeconds = 3600, secret = JWT_SECRET) {
  const now = Math.floor(Date.now() / 1000);
  const header = b64url(JSON.stringify({ alg: "HS256", typ: "JWT" }));
  const payload = b64url(JSON.stringify({ sub, iat: now, exp: now + ttlSeconds }));
  const signature = createHmac("sha256", secret).update(`${header}.${payload}`).digest("base64url");
  return `${header}.${payload}.${signature}`;
}

/** Records every event of a client, by type. */
export function record(client) {
  const seen = {};
  const types = ["message", "edited", "unsent", "reaction", "deleted", "read", "typing", "presence", "system", "sent", "failed", "error", "state"];
  for (const type of types) {
    seen[type] = [];
    client.on(type, (event) => seen[type].push(event));
  }
  return seen;
}

/** The seqs of the recorded stream entries (messages and changes), in delivery order. */
export function streamSeqs(seen) {
  return [...seen.message, ...seen.edited, ...seen.unsent, ...seen.reaction, ...seen.read]
    .filter((e) => typeof e.seq === "number")
    .map((e) => e.seq);
}

const CRC_TABLE = Array.from({ length: 256 }, (_, n) => {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  return c >>> 0;
});

function crc32(buf) {
  let c = 0xffffffff;
  for (const byte of buf) c = CRC_TABLE[(c ^ byte) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

function chunk(type, data) {
  const head = Buffer.alloc(4);
  head.writeUInt32BE(data.length);
  const body = Buffer.concat([Buffer.from(type, "ascii"), data]);
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(body));
  return Buffer.concat([head, body, crc]);
}

/** A valid RGB PNG of `width` x `height` pixels (a gradient). */
export function makePng(width = 4, height = 3) {
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr[8] = 8; // bit depth
  ihdr[9] = 2; // RGB
  const rows = [];
  for (let y = 0; y < height; y++) {
    const row = Buffer.alloc(1 + width * 3);
    for (let x = 0; x < width; x++) {
      row[1 + x * 3] = (x * 60) & 0xff;
      row[2 + x * 3] = (y * 80) & 0xff;
      row[3 + x * 3] = 200;
    }
    rows.push(row);
  }
  return new Uint8Array(
    Buffer.concat([
      Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
      chunk("IHDR", ihdr),
      chunk("IDAT", deflateSync(Buffer.concat(rows))),
      chunk("IEND", Buffer.alloc(0)),
    ]),
  );
}
