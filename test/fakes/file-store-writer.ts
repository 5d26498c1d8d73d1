/**
 * Child process for the file store crash tests: `node --import tsx file-store-writer.ts <dir> write|open`.
 * `write` opens the store and writes in a tight loop until killed: each document's value records the
 * version it was written at, so a reader can check that file contents and versions agree.
 * `open` only tries to open the store and reports the outcome (for the data-folder lock test); `hold`
 * also keeps it open for 8 s.
 */
import { createFileStore } from '../../src/store/file-store.js';
import { VersionConflictError } from '../../src/store/store.js';

const [dir, mode] = process.argv.slice(2);
if (!dir) throw new Error('usage: file-store-writer.ts <dir> write|open|hold');

try {
  const store = await createFileStore(dir);
  if (mode === 'open' || mode === 'hold') {
    process.stdout.write('opened\n');
    // `hold` keeps the folder for a while, so processes started together really compete for it.
    if (mode === 'hold') await new Promise((r) => setTimeout(r, 8000));
    await store.close();
    process.exit(0);
  }
  process.stdout.write('ready\n');
  const writer = async (lane: number): Promise<never> => {
    for (let i = 0; ; i++) {
      const id = `doc-${lane}-${i % 40}`;
      const current = await store.get<{ atVersion: number }>('crash', id);
      const version = (current?.version ?? 0) + 1;
      // Each acknowledged write is reported on stdout (synchronous for pipes on Linux), so the parent
      // can check that everything acknowledged before the kill is still there after it.
      try {
        await store.put('crash', id, { atVersion: version, lane, payload: 'p'.repeat(200 + (i % 3000)) }, { ifVersion: current?.version ?? 0 });
        process.stdout.write(`D ${id} ${version}\n`);
      } catch (err) {
        if (!(err instanceof VersionConflictError)) throw err;
      }
      if (i % 5 === 0) process.stdout.write(`L ${await store.append('crash-log', { lane, i, text: 'l'.repeat(i % 500) })}\n`);
      if (i % 7 === 0) {
        await store.schedule('crash-q', id, version);
        process.stdout.write(`S ${id}\n`);
      }
    }
  };
  await Promise.all([0, 1, 2, 3].map(writer));
} catch (err) {
  process.stderr.write(`${(err as Error).message}\n`);
  process.exit(1);
}
