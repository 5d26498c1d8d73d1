/**
 * Child process for the file store crash tests: `node --import tsx file-store-writer.ts <dir> write|compact|open|hold`.
 * `write` opens the store and writes in a tight loop until killed: each document's value records the
 * version it was written at, so a reader can check that journal lines and versions agree.
 * `compact` first fills the collection `bulk` with 3000 documents of 4 KB, then rewrites them in a loop, so
 * the journal is rewritten (12 MB each time) every few thousand writes: a kill can land in the middle of one.
 * `open` only tries to open the store and reports the outcome (for the data-folder lock test); `hold`
 * also keeps it open for 8 s.
 * Each acknowledged write is reported on stdout (synchronous for pipes on Linux): `D <id> <version>`,
 * `L <log id>`, `S <scheduled id>`.
 */
import { createFileStore } from '../../src/store/file-store.js';
import { VersionConflictError, type Store } from '../../src/store/store.js';

const [dir, mode] = process.argv.slice(2);
if (!dir) throw new Error('usage: file-store-writer.ts <dir> write|compact|open|hold');

/** A compare-and-set write of the next version; reported once acknowledged. */
async function bump(
  store: Store,
  collection: string,
  id: string,
  payload: string,
  extra: object = {},
): Promise<number> {
  const current = await store.get<{ atVersion: number }>(collection, id);
  const version = (current?.version ?? 0) + 1;
  try {
    await store.put(collection, id, { atVersion: version, payload, ...extra }, { ifVersion: current?.version ?? 0 });
    process.stdout.write(`D ${id} ${version}\n`);
  } catch (err) {
    if (!(err instanceof VersionConflictError)) throw err;
  }
  return version;
}

try {
  const store = await createFileStore(dir);
  if (mode === 'open' || mode === 'hold') {
    process.stdout.write('opened\n');
    // `hold` keeps the folder until the parent closes our stdin (once every competitor has had its try).
    if (mode === 'hold') await new Promise((r) => process.stdin.on('end', r).resume());
    await store.close();
    process.exit(0);
  }
  if (mode === 'compact') {
    const ids = Array.from({ length: 3000 }, (_, i) => `bulk-${i}`);
    const page = 'b'.repeat(4000);
    const missing = [];
    for (const id of ids) if (!(await store.get('bulk', id))) missing.push(id);
    await Promise.all(missing.map((id) => bump(store, 'bulk', id, page)));
    process.stdout.write('ready\n');
    const lane = async (n: number): Promise<never> => {
      for (let i = n; ; i += 8) await bump(store, 'bulk', ids[i % ids.length]!, page);
    };
    await Promise.all(Array.from({ length: 8 }, (_, n) => lane(n)));
  }
  process.stdout.write('ready\n');
  const writer = async (lane: number): Promise<never> => {
    for (let i = 0; ; i++) {
      const id = `doc-${lane}-${i % 40}`;
      const version = await bump(store, 'crash', id, 'p'.repeat(200 + (i % 3000)), { lane });
      if (i % 5 === 0)
        process.stdout.write(`L ${await store.append('crash-log', { lane, i, text: 'l'.repeat(i % 500) })}\n`);
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
