import { COMMANDS } from './cli/commands.js';
import { formatTable } from './cli/table.js';
import { CliError, EXIT, type CliCommand, type CliIO } from './cli/types.js';

/**
 * The mailgate CLI (`npx mailgate <command>`): a dispatcher over the commands registered in
 * src/cli/commands.ts. bin/mailgate.js calls runCli with the process's streams; tests call it too.
 */

function findCommand(args: readonly string[]): { command: CliCommand; rest: string[] } | null {
  let best: { command: CliCommand; rest: string[] } | null = null;
  for (const command of COMMANDS) {
    const words = command.name.split(' ');
    if (words.every((w, i) => args[i] === w) && (!best || words.length > best.command.name.split(' ').length)) {
      best = { command, rest: args.slice(words.length) };
    }
  }
  return best;
}

function helpText(): string {
  const rows = [...COMMANDS].sort((a, b) => a.name.localeCompare(b.name)).map((c) => [c.name, c.summary]);
  return (
    'Usage: mailgate <command> [options]\n\n' +
    'The CLI reads the same environment as the service (REDIS_URL, MAILGATE_DATA_DIR, MAILGATE_ENCRYPTION_KEYS, …).\n\n' +
    formatTable(
      ['COMMAND', 'WHAT IT DOES'],
      [...rows, ['help [command]', 'show this list, or the usage of one command']],
    )
  );
}

export async function runCli(argv: readonly string[], io: CliIO): Promise<number> {
  const args = [...argv];
  if (args.length === 0 || args[0] === 'help' || args[0] === '--help' || args[0] === '-h') {
    const topic = args.slice(1);
    if (topic.length > 0) {
      const found = findCommand(topic);
      if (!found) {
        io.stderr.write(`Unknown command "${topic.join(' ')}".\n\n${helpText()}`);
        return EXIT.unusable;
      }
      io.stdout.write(`${found.command.usage ?? `mailgate ${found.command.name}`}\n`);
      return EXIT.ok;
    }
    io.stdout.write(helpText());
    return args.length === 0 ? EXIT.unusable : EXIT.ok;
  }
  const found = findCommand(args);
  if (!found) {
    io.stderr.write(`Unknown command "${args.join(' ')}".\n\n${helpText()}`);
    return EXIT.unusable;
  }
  if (found.rest.includes('--help') || found.rest.includes('-h')) {
    io.stdout.write(`${found.command.usage ?? `mailgate ${found.command.name}`}\n`);
    return EXIT.ok;
  }
  try {
    return await found.command.run(found.rest, io);
  } catch (err) {
    if (err instanceof CliError) {
      io.stderr.write(`${err.message}\n`);
      return err.exitCode;
    }
    io.stderr.write(`mailgate ${found.command.name} failed: ${err instanceof Error ? err.message : String(err)}\n`);
    return EXIT.failed;
  }
}

/** Runs the CLI in this process: real streams, Ctrl-C, exit code. Called by bin/mailgate.js only. */
export async function main(): Promise<void> {
  const handlers = new Set<() => void>();
  let interrupts = 0;
  const onSigint = () => {
    interrupts++;
    if (interrupts > 1 || handlers.size === 0) process.exit(EXIT.interrupted);
    for (const h of handlers) h();
  };
  process.on('SIGINT', onSigint);
  const io: CliIO = {
    stdout: process.stdout,
    stderr: process.stderr,
    env: process.env,
    onInterrupt(handler) {
      handlers.add(handler);
      return () => handlers.delete(handler);
    },
  };
  try {
    process.exitCode = await runCli(process.argv.slice(2), io);
  } finally {
    process.off('SIGINT', onSigint);
  }
}
