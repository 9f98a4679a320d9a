/**
 * Where a {@link ChatClient} keeps what must survive a reload: the outbox (sends not yet
 * acknowledged) and the last seq delivered, per couple. {@link IndexedDbStorage} for
 * browsers, {@link MemoryStorage} elsewhere; any {@link ChatStorage} can be plugged in
 * (React Native: AsyncStorage, see the README).
 *
 * @module
 */

import type { PendingSend } from "./types.js";

/** Async key-value store of the last seq and ordered outbox of each couple. */
export interface ChatStorage {
  getLastSeq(coupleId: string): Promise<number | null>;
  setLastSeq(coupleId: string, seq: number): Promise<void>;
  /** Adds the entry, or replaces the one with its tempId. */
  putPending(coupleId: string, item: PendingSend): Promise<void>;
  removePending(coupleId: string, tempId: string): Promise<void>;
  /** The couple's entries, oldest first (by `createdAt`, then `tempId`). */
  listPending(coupleId: string): Promise<PendingSend[]>;
}

/** Oldest first: by createdAt, then tempId. */
export function sortPending(items: PendingSend[]): PendingSend[] {
  return items.sort((a, b) => a.createdAt - b.createdAt || (a.tempId < b.tempId ? -1 : a.tempId > b.tempId ? 1 : 0));
}

function copy(item: PendingSend): PendingSend {
  return JSON.parse(JSON.stringify(item)) as PendingSend;
}

/** Kept in memory: survives a new ChatClient over the same instance, not a reload. */
export class MemoryStorage implements ChatStorage {
  private readonly seqs = new Map<string, number>();
  private readonly pending = new Map<string, Map<string, PendingSend>>();

  async getLastSeq(coupleId: string): Promise<number | null> {
    return this.seqs.get(coupleId) ?? null;
  }

  async setLastSeq(coupleId: string, seq: number): Promise<void> {
    this.seqs.set(coupleId, seq);
  }

  async putPending(coupleId: string, item: PendingSend): Promise<void> {
    let items = this.pending.get(coupleId);
    if (!items) this.pending.set(coupleId, (items = new Map()));
    items.set(item.tempId, copy(item));
  }

  async removePending(coupleId: string, tempId: string): Promise<void> {
    this.pending.get(coupleId)?.delete(tempId);
  }

  async listPending(coupleId: string): Promise<PendingSend[]> {
    return sortPending([...(this.pending.get(coupleId)?.values() ?? [])].map(copy));
  }
}

interface StoredPending extends PendingSend {
  coupleId: string;
}

const SEQ_STORE = "lastSeq";
const PENDING_STORE = "pending";

function request<T>(req: IDBRequest<T>): Promise<T> {
  return new Promise((resolve, reject) => {
    req.onsuccess = () => resolve(req.result);
    req.onerror = () => reject(req.error ?? new Error("IndexedDB request failed"));
  });
}

function done(tx: IDBTransaction): Promise<void> {
  return new Promise((resolve, reject) => {
    tx.oncomplete = () => resolve();
    tx.onerror = () => reject(tx.error ?? new Error("IndexedDB transaction failed"));
    tx.onabort = () => reject(tx.error ?? new Error("IndexedDB transaction aborted"));
  });
}

/** Browsers: one IndexedDB database (`dbName`, default `ieum-chat`) with the last seqs and the outboxes. */
export class IndexedDbStorage implements ChatStorage {
  readonly dbName: string;
  private db: Promise<IDBDatabase> | null = null;

  constructor(dbName = "ieum-chat", private readonly factory?: IDBFactory) {
    this.dbName = dbName;
  }

  private open(): Promise<IDBDatabase> {
    if (!this.db) {
      const factory = this.factory ?? (globalThis as { indexedDB?: IDBFactory }).indexedDB;
      if (!factory) return Promise.reject(new Error("IndexedDB is not available here"));
      const req = factory.open(this.dbName, 1);
      req.onupgradeneeded = () => {
        const db = req.result;
        if (!db.objectStoreNames.contains(SEQ_STORE)) db.createObjectStore(SEQ_STORE);
        if (!db.objectStoreNames.contains(PENDING_STORE)) {
          db.createObjectStore(PENDING_STORE, { keyPath: ["coupleId", "tempId"] });
        }
      };
      this.db = request(req).then((db) => {
        db.onversionchange = () => {
          db.close();
          this.db = null;
        };
        return db;
      });
      this.db.catch(() => {
        this.db = null;
      });
    }
    return this.db;
  }

  private async run<T>(store: string, mode: IDBTransactionMode, op: (s: IDBObjectStore) => IDBRequest<T>): Promise<T> {
    const db = await this.open();
    const tx = db.transaction(store, mode);
    const result = request(op(tx.objectStore(store)));
    await done(tx);
    return result;
  }

  async getLastSeq(coupleId: string): Promise<number | null> {
    const value = await this.run(SEQ_STORE, "readonly", (s) => s.get(coupleId) as IDBRequest<unknown>);
    return typeof value === "number" ? value : null;
  }

  async setLastSeq(coupleId: string, seq: number): Promise<void> {
    await this.run(SEQ_STORE, "readwrite", (s) => s.put(seq, coupleId));
  }

  async putPending(coupleId: string, item: PendingSend): Promise<void> {
    const stored: StoredPending = { ...copy(item), coupleId };
    await this.run(PENDING_STORE, "readwrite", (s) => s.put(stored));
  }

  async removePending(coupleId: string, tempId: string): Promise<void> {
    await this.run(PENDING_STORE, "readwrite", (s) => s.delete([coupleId, tempId]));
  }

  async listPending(coupleId: string): Promise<PendingSend[]> {
    const range = IDBKeyRange.bound([coupleId, ""], [coupleId, "\uffff"]);
    const rows = (await this.run(PENDING_STORE, "readonly", (s) => s.getAll(range))) as StoredPending[];
    return sortPending(
      rows.map(({ coupleId: _couple, ...item }) => item),
    );
  }
}

/** IndexedDbStorage where IndexedDB exists (browsers), else MemoryStorage. */
export function defaultStorage(): ChatStorage {
  return (globalThis as { indexedDB?: unknown }).indexedDB ? new IndexedDbStorage() : new MemoryStorage();
}
