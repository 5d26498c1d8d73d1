/**
 * A CLI command: `name` is what follows `mailgate` (one or more words, e.g. `keys rotate`); `run` gets the
 * remaining arguments and returns the process exit code. Register a command group in src/cli/commands.ts.
 */
export interface CliCommand {
  name: string;
  summary: string;
  /** Shown by `mailgate help <command>`; the first line is the synopsis. */
  usage?: string;
  run(args: string[], io: CliIO): Promise<number>;
}

export interface CliIO {
  stdout: NodeJS.WritableStream & { isTTY?: boolean };
  stderr: NodeJS.WritableStream & { isTTY?: boolean; columns?: number };
  env: Readonly<Record<string, string | undefined>>;
  /** Subscribes to Ctrl-C for the duration of a command; returns the unsubscribe function. */
  onInterrupt(handler: () => void): () => void;
}

/** An expected failure: the message is printed as is (no stack trace) and the code becomes the exit code. */
export class CliError extends Error {
  constructor(
    message: string,
    readonly exitCode = 1,
  ) {
    super(message);
    this.name = 'CliError';
  }
}

export const EXIT = {
  ok: 0,
  failed: 1,
  /** Bad usage, configuration or an unreachable store: nothing was done. */
  unusable: 2,
  interrupted: 130,
} as const;
