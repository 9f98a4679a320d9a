/** Capped exponential backoff with full jitter: attempt n waits uniform [0, min(max, initial * 2^n)]. */
export class Backoff {
  readonly initialMs: number;
  readonly maxMs: number;

  constructor(initialMs = 500, maxMs = 30_000, private readonly random: () => number = Math.random) {
    if (!(initialMs > 0 && maxMs >= initialMs)) throw new RangeError("backoff needs 0 < initialMs <= maxMs");
    this.initialMs = initialMs;
    this.maxMs = maxMs;
  }

  /** The largest delay before retry number `attempt` (0 for the first). */
  ceiling(attempt: number): number {
    return Math.min(this.maxMs, this.initialMs * 2 ** Math.min(Math.max(attempt, 0), 52));
  }

  delay(attempt: number): number {
    return Math.floor(this.random() * this.ceiling(attempt));
  }
}
