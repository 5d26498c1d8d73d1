import cliProgress from 'cli-progress';
import { AuditLog } from '../admin/audit.js';
import type { Keyring } from '../crypto/keyring.js';
import { SEALED_FIELDS, SealedFields } from '../crypto/sealed-fields.js';
import { rotateEncryptionKeys } from '../admin/key-rotation.js';
import { keyUsage, MissingEncryptionKeyError, type RotationProgress } from '../crypto/rotation.js';
import { cliActor, withCliContext } from './context.js';
import { formatTable } from './table.js';
import { CliError, EXIT, type CliCommand, type CliIO } from './types.js';

/**
 * `keys status` and `keys rotate`: the encryption key steps of the README's rotation procedure.
 * Removing a key is editing MAILGATE_ENCRYPTION_KEYS; `keys status` says when that is safe.
 */

function usageTable(perKey: Record<string, number>, keyring: Keyring | null): string {
  const ids = [...new Set([...(keyring?.keyIds ?? []), ...Object.keys(perKey)])];
  const rows = ids.map((kid) => {
    const count = perKey[kid] ?? 0;
    const configured = keyring?.has(kid) ?? false;
    const active = keyring?.activeKeyId === kid;
    let note: string;
    if (!configured) note = 'NOT CONFIGURED: add it back to the key list, then run keys rotate';
    else if (active) note = 'seals new values';
    else if (count === 0) note = 'protects nothing: safe to remove from the key list';
    else note = 'still needed: run keys rotate';
    return [kid, active ? 'yes' : configured ? 'no' : 'missing', String(count), note];
  });
  return formatTable(['KEY ID', 'ACTIVE', 'VALUES PROTECTED', 'NOTE'], rows);
}

const status: CliCommand = {
  name: 'keys status',
  summary: 'show how many stored values each encryption key protects',
  usage:
    'mailgate keys status\n\nCounts the sealed values per key id in the sealed fields of the store. A key that protects 0 values can be removed.',
  async run(_args, io) {
    return withCliContext(io, async (ctx) => {
      const usage = await keyUsage(ctx.store, ctx.keyring ?? emptyKeyring());
      io.stdout.write(`Store: ${ctx.store.kind}; keys from ${ctx.keySource}\n`);
      io.stdout.write(`${usage.documents} documents, ${usage.sealedValues} sealed values\n\n`);
      io.stdout.write(usageTable(usage.perKey, ctx.keyring));
      const missing = Object.entries(usage.perKey).filter(([kid, n]) => n > 0 && !ctx.keyring?.has(kid));
      return missing.length > 0 ? EXIT.failed : EXIT.ok;
    });
  },
};

/** A keyring stand-in for a store with no keys configured at all: counts still work, nothing opens. */
function emptyKeyring(): Keyring {
  return {
    keyIds: [],
    has: () => false,
    activeKeyId: '',
    sealedFields: new SealedFields(SEALED_FIELDS),
  } as unknown as Keyring;
}

/** Progress on a terminal: a bar with count, rate and time left. Elsewhere: a plain line every few seconds. */
function progressReporter(io: CliIO) {
  const started = Date.now();
  const rate = (done: number) => {
    const seconds = (Date.now() - started) / 1000;
    return seconds > 0 ? Math.round(done / seconds) : 0;
  };
  if (io.stderr.isTTY) {
    const bar = new cliProgress.SingleBar(
      {
        stream: io.stderr,
        format: 'Re-sealing [{bar}] {value}/{total} values | {rate} values/s | {eta_formatted} left',
        hideCursor: true,
        etaBuffer: 200,
      },
      cliProgress.Presets.shades_classic,
    );
    let startedBar = false;
    return {
      update(p: RotationProgress) {
        if (!startedBar) {
          bar.start(p.toReseal, p.resealed, { rate: 0 });
          startedBar = true;
        } else bar.update(p.resealed, { rate: rate(p.resealed) });
      },
      stop() {
        if (startedBar) bar.stop();
      },
    };
  }
  let lastLine = 0;
  return {
    update(p: RotationProgress) {
      const finished = p.documentsDone === p.documentsTotal;
      if (!finished && Date.now() - lastLine < 2000 && p.documentsDone > 0) return;
      lastLine = Date.now();
      const r = rate(p.resealed);
      const left = r > 0 ? `, about ${Math.ceil((p.toReseal - p.resealed) / r)} s left` : '';
      const percent = p.toReseal === 0 ? 100 : Math.floor((p.resealed / p.toReseal) * 100);
      io.stderr.write(`progress: ${p.resealed}/${p.toReseal} values (${percent}%), ${r} values/s${left}\n`);
    },
    stop() {},
  };
}

const rotate: CliCommand = {
  name: 'keys rotate',
  summary: 're-seal every stored secret with the active encryption key (resumable)',
  usage:
    'mailgate keys rotate\n\n' +
    'Re-seals every value not on the active (first) key, one document at a time with a version check, so it\n' +
    'can run while mailgate serves traffic (on Redis) and can be stopped with Ctrl-C and run again: values\n' +
    'already done are skipped. On the embedded store, stop mailgate first (the data folder serves one process).',
  async run(_args, io) {
    return withCliContext(io, async (ctx) => {
      const audit = new AuditLog(ctx.store);
      const actor = cliActor();
      if (!ctx.keyring) {
        io.stdout.write(`No encryption key exists yet (${ctx.keySource}); nothing is sealed, nothing to rotate.\n`);
        return EXIT.ok;
      }
      const keyring = ctx.keyring;
      io.stdout.write(`Active key: ${keyring.activeKeyId} (keys from ${ctx.keySource}); store: ${ctx.store.kind}\n`);

      const controller = new AbortController();
      const stopListening = io.onInterrupt(() => {
        if (!controller.signal.aborted)
          io.stderr.write('\nStopping after the documents in progress (Ctrl-C again to quit at once)…\n');
        controller.abort();
      });
      const progress = progressReporter(io);
      let result;
      try {
        result = await rotateEncryptionKeys({ store: ctx.store, keyring, audit }, actor, {
          signal: controller.signal,
          onProgress: (p) => progress.update(p),
        });
      } catch (err) {
        progress.stop();
        if (err instanceof MissingEncryptionKeyError)
          throw new CliError(`${err.message}\nNothing was changed.`, EXIT.failed);
        throw new CliError(
          `Rotation stopped: ${(err as Error).message}\nEvery document is either fully re-sealed or untouched; run keys rotate again to continue.`,
          EXIT.failed,
        );
      } finally {
        stopListening();
      }
      progress.stop();

      const seconds = Math.max(result.durationMs, 1) / 1000;
      io.stdout.write(
        `\n${result.aborted ? 'Interrupted' : 'Done'}: ${result.resealed} values re-sealed in ${result.documentsWritten} documents ` +
          `(${result.scanned} scanned) in ${seconds.toFixed(1)} s, ${Math.round(result.resealed / seconds)} values/s.\n\n`,
      );
      io.stdout.write(usageTable(result.perKeyAfter, keyring));
      if (result.failures.length > 0) {
        io.stdout.write(
          `\n${result.failures.length} value(s) could not be opened for their record and were left as they are:\n`,
        );
        for (const f of result.failures.slice(0, 20)) io.stdout.write(`  - ${f.location}\n`);
      }
      if (result.aborted) {
        io.stdout.write('\nRun `mailgate keys rotate` again to finish; values already done are skipped.\n');
        return EXIT.interrupted;
      }
      return result.failures.length > 0 ? EXIT.failed : EXIT.ok;
    });
  },
};

export const keysCommands: readonly CliCommand[] = [status, rotate];
