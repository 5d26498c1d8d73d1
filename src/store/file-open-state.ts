import type { AppendFile } from './append-file.js';
import { StoreUnavailableError } from './store.js';

/**
 * Whether the file store still serves: closed, or stopped by its first failed write. Shared by every part of the
 * store, since one failed write makes memory and the disk disagree for all of them.
 */
export class FileStoreState {
  #closed = false;
  /** Set by the first failed write: from then on every operation throws it. */
  #failure: StoreUnavailableError | null = null;
  readonly #log: { warn(obj: object, msg: string): void } | undefined;

  constructor(log?: { warn(obj: object, msg: string): void }) {
    this.#log = log;
  }

  get failed(): boolean {
    return this.#failure !== null;
  }

  assertOpen(): void {
    if (this.#failure) throw this.#failure;
    if (this.#closed) throw new StoreUnavailableError('the file store is closed');
  }

  /** Marks the store closed; false when it already was. */
  close(): boolean {
    if (this.#closed) return false;
    this.#closed = true;
    return true;
  }

  /** `written`, with a failure turned into the store's StoreUnavailableError. */
  guard(file: AppendFile, written: Promise<void>): Promise<void> {
    return written.catch((err: unknown) => {
      throw this.#fail(file, err);
    });
  }

  /**
   * Records the first failed write: memory is ahead of the disk and the file may end in a partial line, so
   * the store stops here rather than serve or append on top of that.
   */
  #fail(file: AppendFile, cause: unknown): StoreUnavailableError {
    if (!this.#failure) {
      const reason = (cause as NodeJS.ErrnoException).code ?? (cause as Error).message;
      this.#failure = new StoreUnavailableError(
        `Writing ${file.path} failed (${reason}); the file store accepts no more operations, since the file may end in a ` +
          'partial line and writes in memory may be missing from it. Fix the disk (space, permissions, I/O errors) and ' +
          'restart mailgate: the partial line is cut off at start, and writes that were not acknowledged are not kept.',
        { cause },
      );
      this.#log?.warn({ err: cause, file: file.path }, 'a store write failed; the file store stopped');
    }
    return this.#failure;
  }
}
