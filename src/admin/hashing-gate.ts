/**
 * Bounds how many password hashes (scrypt, about 128 MiB and a third of a second each) run at once in this
 * process: `total` across all accounts and `perAccount` for one account; callers beyond that wait their turn,
 * and beyond `maxWaiting` waiting callers the gate refuses at once. scrypt runs on libuv's thread pool (four
 * threads by default), which also serves file I/O: left unbounded, a burst of logins queues every file write of
 * the store behind it and an unrelated API request waits for all of them.
 */

export interface HashingGateLimits {
  total: number;
  perAccount: number;
  maxWaiting: number;
}

export const DEFAULT_HASHING_LIMITS: HashingGateLimits = { total: 2, perAccount: 1, maxWaiting: 64 };

export class HashingBusyError extends Error {
  constructor() {
    super('too many password checks are waiting');
    this.name = 'HashingBusyError';
  }
}

interface Waiter {
  account: string;
  start: () => void;
}

export class HashingGate {
  #running = 0;
  readonly #runningPerAccount = new Map<string, number>();
  readonly #waiting: Waiter[] = [];

  constructor(private readonly limits: HashingGateLimits = DEFAULT_HASHING_LIMITS) {}

  /** Runs `hash` when a slot for `account` is free; throws HashingBusyError when too many are waiting already. */
  async run<T>(account: string, hash: () => Promise<T>): Promise<T> {
    if (!this.#canStart(account)) {
      if (this.#waiting.length >= this.limits.maxWaiting) throw new HashingBusyError();
      await new Promise<void>((start) => this.#waiting.push({ account, start }));
    } else {
      this.#take(account);
    }
    try {
      return await hash();
    } finally {
      this.#release(account);
    }
  }

  /** Password checks running or waiting now (for tests and metrics). */
  get load(): { running: number; waiting: number } {
    return { running: this.#running, waiting: this.#waiting.length };
  }

  #canStart(account: string): boolean {
    return this.#running < this.limits.total && (this.#runningPerAccount.get(account) ?? 0) < this.limits.perAccount;
  }

  #take(account: string): void {
    this.#running++;
    this.#runningPerAccount.set(account, (this.#runningPerAccount.get(account) ?? 0) + 1);
  }

  #release(account: string): void {
    this.#running--;
    const left = (this.#runningPerAccount.get(account) ?? 1) - 1;
    if (left > 0) this.#runningPerAccount.set(account, left);
    else this.#runningPerAccount.delete(account);
    // First come, first served among those whose account has a free slot.
    for (let i = 0; i < this.#waiting.length && this.#running < this.limits.total;) {
      const waiter = this.#waiting[i]!;
      if (this.#canStart(waiter.account)) {
        this.#waiting.splice(i, 1);
        this.#take(waiter.account);
        waiter.start();
      } else {
        i++;
      }
    }
  }
}
