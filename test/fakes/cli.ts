import { PassThrough } from 'node:stream';
import { runCli } from '../../src/cli.js';
import type { CliIO } from '../../src/cli/types.js';

/** Runs the mailgate CLI in this process through its real dispatcher; answers its exit code and output. */
export async function cliInProcess(
  env: Record<string, string>,
  ...argv: string[]
): Promise<{ code: number; stdout: string; stderr: string }> {
  const out = new PassThrough();
  const err = new PassThrough();
  const chunks = { out: [] as Buffer[], err: [] as Buffer[] };
  out.on('data', (c: Buffer) => chunks.out.push(c));
  err.on('data', (c: Buffer) => chunks.err.push(c));
  const io: CliIO = { stdout: out, stderr: err, env, onInterrupt: () => () => {} };
  const code = await runCli(argv, io);
  return {
    code,
    stdout: Buffer.concat(chunks.out).toString('utf8'),
    stderr: Buffer.concat(chunks.err).toString('utf8'),
  };
}
