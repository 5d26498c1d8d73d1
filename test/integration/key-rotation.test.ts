import { randomBytes } from 'node:crypto';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { AuditLog } from '../../src/admin/audit.js';
import { rotateEncryptionKeys } from '../../src/admin/key-rotation.js';
import { isSealed, Keyring, sealedKeyId, type SealContext } from '../../src/crypto/keyring.js';
import { assertAllKeysPresent, keyUsage, MissingEncryptionKeyError, rotateKeys } from '../../src/crypto/rotation.js';
import { SealedFields } from '../../src/crypto/sealed-fields.js';
import { createFileStore } from '../../src/store/file-store.js';
import { createRedisStore } from '../../src/store/redis-store.js';
import { VersionConflictError, type Store } from '../../src/store/store.js';
import { redisUrlForTests, uniquePrefix } from '../fakes/redis.js';

const oldKey = { id: 'old', key: randomBytes(32) };
const newKey = { id: 'new', key: randomBytes(32) };
/** The engine's own fixture fields: top level, nested, and in arrays (`*`). */
const sealedFields = new SealedFields([
  { collection: 'smtp_servers', path: 'password' },
  { collection: 'grants', path: 'tokens.refreshToken' },
  { collection: 'grants', path: 'tokens.accessToken' },
  { collection: 'oauth_integrations', path: 'clientSecret' },
  { collection: 'oauth_integrations', path: 'secrets.*.value' },
  { collection: 'things', path: 'secret' },
]);
const before = new Keyring([oldKey], { sealedFields });
/** Step (b) of the roll: the new key writes, the old one still opens. */
const during = new Keyring([newKey, oldKey], { sealedFields });
/** Step (d): the old key is gone. */
const after = new Keyring([newKey], { sealedFields });

const key = (ctx: SealContext) => `${ctx.collection}/${ctx.id}#${ctx.field}`;

interface Seeded {
  expected: Map<string, string>;
  values: number;
}

/** 1,200 sealed values in 600 documents over 3 collections, at top level, nested and in arrays. */
async function seed(store: Store): Promise<Seeded> {
  const expected = new Map<string, string>();
  const seal = (plain: string, ctx: SealContext) => {
    expected.set(key(ctx), plain);
    return before.seal(plain, ctx);
  };
  const puts: Promise<unknown>[] = [];
  for (let i = 0; i < 200; i++) {
    const s = `srv-${i}`;
    puts.push(
      store.put('smtp_servers', s, {
        name: `server ${i}`,
        host: 'smtp.example.com',
        password: seal(`pw-${i}`, { collection: 'smtp_servers', id: s, field: 'password' }),
        counter: 0,
      }),
    );
    const g = `grant-${i}`;
    puts.push(
      store.put('grants', g, {
        mailbox: `user${i}@example.com`,
        tokens: {
          refreshToken: seal(`rt-${i}`, { collection: 'grants', id: g, field: 'tokens.refreshToken' }),
          accessToken: seal(`at-${i}`, { collection: 'grants', id: g, field: 'tokens.accessToken' }),
        },
        counter: 0,
      }),
    );
    const n = `int-${i}`;
    puts.push(
      store.put('oauth_integrations', n, {
        provider: 'google',
        clientSecret: seal(`cs-${i}`, { collection: 'oauth_integrations', id: n, field: 'clientSecret' }),
        secrets: [
          {
            value: seal(`s0-${i}`, { collection: 'oauth_integrations', id: n, field: 'secrets.0.value' }),
            note: 'current',
          },
          {
            value: seal(`s1-${i}`, { collection: 'oauth_integrations', id: n, field: 'secrets.1.value' }),
            note: 'previous',
          },
        ],
      }),
    );
  }
  await store.put('settings', 'plain', { note: 'no secrets here', list: [1, 2, 3] });
  await Promise.all(puts);
  return { expected, values: expected.size };
}

/** Every sealed value opens with its own context under `keyring`, equals what was sealed, and uses `kid`. */
async function verify(store: Store, keyring: Keyring, expected: Map<string, string>, kid: string): Promise<number> {
  let seen = 0;
  for (const collection of await store.collections()) {
    for (const doc of await store.list(collection)) {
      const walk = (node: unknown, field: string): void => {
        if (isSealed(node)) {
          const ctx = { collection, id: doc.id, field };
          expect(sealedKeyId(node)).toBe(kid);
          expect(keyring.open(node, ctx)).toBe(expected.get(key(ctx)));
          seen++;
        } else if (node && typeof node === 'object') {
          for (const [k, v] of Object.entries(node)) walk(v, field ? `${field}.${k}` : k);
        }
      };
      walk(doc.value, '');
    }
  }
  return seen;
}

/** A live service during the rotation: read-modify-write with CAS, sealing a new access token with the active key. */
function startConcurrentWriter(store: Store, expected: Map<string, string>) {
  let stop = false;
  let writes = 0;
  const done = (async () => {
    for (let round = 0; !stop; round++) {
      const id = `grant-${round % 200}`;
      for (;;) {
        const doc = await store.get<{ tokens: { refreshToken: string; accessToken: string }; counter: number }>(
          'grants',
          id,
        );
        const ctx = { collection: 'grants', id, field: 'tokens.accessToken' };
        const plain = `at-${id}-r${round}`;
        const value = {
          ...doc!.value,
          counter: doc!.value.counter + 1,
          tokens: { ...doc!.value.tokens, accessToken: during.seal(plain, ctx) },
        };
        try {
          await store.put('grants', id, value, { ifVersion: doc!.version });
          expected.set(key(ctx), plain);
          writes++;
          break;
        } catch (err) {
          if (!(err instanceof VersionConflictError)) throw err;
        }
      }
      await new Promise((r) => setImmediate(r));
    }
  })();
  return {
    stop: async () => {
      stop = true;
      await done;
      return writes;
    },
  };
}

function rotationSuite(name: string, open: () => Promise<{ store: Store; cleanup: () => Promise<void> }>) {
  describe(name, () => {
    let cleanup: (() => Promise<void>) | undefined;
    afterEach(async () => {
      await cleanup?.();
      cleanup = undefined;
    });

    it('rotates 1,200 values while a service writes, resumes after an interruption, and reruns as a no-op', async () => {
      const opened = await open();
      const store = opened.store;
      cleanup = opened.cleanup;
      const { expected, values } = await seed(store);
      expect(values).toBe(1200);

      const usage = await keyUsage(store, during);
      expect(usage.perKey).toEqual({ new: 0, old: 1200 });
      expect(usage.sealedValues).toBe(1200);
      // The settings document has no sealed field and is not read.
      expect(usage.documents).toBe(600);

      // The service refuses to start without the old key, naming it and how many values need it.
      const refusal = await assertAllKeysPresent(store, after).catch((e: unknown) => e);
      expect(refusal).toBeInstanceOf(MissingEncryptionKeyError);
      expect((refusal as Error).message).toMatch(
        /key "old" protects 1200 stored values \(for example [a-z_]+\/[^#]+#[a-zA-Z.0-9]+\)/,
      );
      expect((refusal as Error).message).not.toMatch(/pw-|rt-|at-|cs-/);
      await expect(assertAllKeysPresent(store, during)).resolves.toMatchObject({ sealedValues: 1200 });

      // Run 1, interrupted once 300 values are done.
      const writer = startConcurrentWriter(store, expected);
      const controller = new AbortController();
      const first = await rotateKeys(store, during, {
        signal: controller.signal,
        onProgress: (p) => {
          if (p.resealed >= 300) controller.abort();
        },
      });
      expect(first.aborted).toBe(true);
      expect(first.resealed).toBeGreaterThanOrEqual(300);
      expect(first.perKeyAfter.old).toBeGreaterThan(0);
      expect(first.failures).toEqual([]);

      // Run 2 finishes the rest, with the writer still going.
      const second = await rotateKeys(store, during);
      const writes = await writer.stop();
      expect(writes).toBeGreaterThan(0);
      expect(second.aborted).toBe(false);
      expect(second.failures).toEqual([]);
      expect(second.perKeyAfter).toEqual({ new: 1200, old: 0 });
      // The writer re-sealed some access tokens with the new key itself, so the two runs did at most 1,200.
      expect(first.resealed + second.resealed).toBeLessThanOrEqual(1200);
      expect(first.resealed + second.resealed).toBeGreaterThan(1000);

      // Every value opens with its own record identity under the new key alone, holding the latest plaintext.
      expect(await verify(store, after, expected, 'new')).toBe(1200);
      await expect(assertAllKeysPresent(store, after)).resolves.toMatchObject({ perKey: { new: 1200 } });

      // A ciphertext moved to another record does not open: the AAD was the record's own identity.
      const a = await store.get<{ password: string }>('smtp_servers', 'srv-1');
      expect(() =>
        after.open(a!.value.password, { collection: 'smtp_servers', id: 'srv-2', field: 'password' }),
      ).toThrow(/another record|altered/);

      // Run 3 is a no-op: nothing re-sealed, no document rewritten.
      const versions = new Map((await store.list('grants')).map((d) => [d.id, d.version]));
      const third = await rotateKeys(store, during);
      expect(third).toMatchObject({ resealed: 0, documentsWritten: 0, aborted: false, failures: [] });
      expect(new Map((await store.list('grants')).map((d) => [d.id, d.version]))).toEqual(versions);

      const rate = Math.round((1200 / (first.durationMs + second.durationMs)) * 1000);
      console.log(
        `${name}: rotated 1,200 values in ${first.durationMs + second.durationMs} ms (~${rate} values/s) beside ${writes} concurrent writes; ` +
          `${first.conflictsRetried + second.conflictsRetried} documents re-read after a conflict`,
      );
    }, 60_000);

    it("re-reads a document a service changed between the read and the write, keeping the service's change", async () => {
      const opened = await open();
      cleanup = opened.cleanup;
      const inner = opened.store;
      const ctx = (field: string) => ({ collection: 'grants', id: 'g1', field });
      await inner.put('grants', 'g1', {
        counter: 0,
        tokens: {
          refreshToken: before.seal('rt', ctx('tokens.refreshToken')),
          accessToken: before.seal('at', ctx('tokens.accessToken')),
        },
      });
      // The service's write lands just before rotation's first write of g1 (a real write to the real store).
      let interfered = false;
      const racingPut: Store['put'] = async (collection, id, value, options) => {
        if (!interfered && collection === 'grants' && id === 'g1') {
          interfered = true;
          const doc = await inner.get<{ tokens: { refreshToken: string } }>('grants', 'g1');
          await inner.put(
            'grants',
            'g1',
            {
              counter: 1,
              tokens: {
                refreshToken: doc!.value.tokens.refreshToken,
                accessToken: during.seal('at-2', ctx('tokens.accessToken')),
              },
            },
            { ifVersion: doc!.version },
          );
        }
        return inner.put(collection, id, value, options);
      };
      const racing = new Proxy(inner, {
        get(target, prop) {
          if (prop === 'put') return racingPut;
          const member: unknown = Reflect.get(target, prop, target);
          return typeof member === 'function' ? (member as (...args: unknown[]) => unknown).bind(target) : member;
        },
      });
      const result = await rotateKeys(racing, during);
      expect(interfered).toBe(true);
      expect(result.conflictsRetried).toBe(1);
      expect(result.perKeyAfter).toEqual({ new: 2, old: 0 });
      const doc = await inner.get<{ counter: number; tokens: { refreshToken: string; accessToken: string } }>(
        'grants',
        'g1',
      );
      expect(doc!.value.counter).toBe(1);
      expect(doc!.version).toBe(3);
      expect(after.open(doc!.value.tokens.accessToken, ctx('tokens.accessToken'))).toBe('at-2');
      expect(after.open(doc!.value.tokens.refreshToken, ctx('tokens.refreshToken'))).toBe('rt');
    });

    it('reports a value that does not open for its record instead of rewriting it, and rotates the rest', async () => {
      const opened = await open();
      const store = opened.store;
      cleanup = opened.cleanup;
      const good = before.seal('good', { collection: 'things', id: 'a', field: 'secret' });
      const moved = before.seal('moved', { collection: 'things', id: 'other', field: 'secret' });
      await store.put('things', 'a', { secret: good });
      await store.put('things', 'b', { secret: moved });
      const result = await rotateKeys(store, during);
      expect(result.resealed).toBe(1);
      expect(result.failures).toEqual([{ location: 'things/b#secret', reason: expect.stringMatching(/things\/b/) }]);
      expect((await store.get<{ secret: string }>('things', 'b'))!.value.secret).toBe(moved);
      expect(result.perKeyAfter).toEqual({ new: 1, old: 1 });
    });
  });
}

rotationSuite('key rotation on the file store', async () => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'mailgate-rotate-'));
  const store = await createFileStore(dir);
  return {
    store,
    cleanup: async () => {
      await store.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
});

describe('key rotation on the file store, on disk', () => {
  it('leaves no value sealed with the old key in the data folder once a rotation has run', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'mailgate-rotate-disk-'));
    const store = await createFileStore(dir);
    try {
      const { expected } = await seed(store);
      const docsDir = path.join(dir, 'store', 'docs');
      const journals = async () =>
        Promise.all((await readdir(docsDir)).map((f) => readFile(path.join(docsDir, f), 'utf8')));
      expect((await journals()).join('').includes('mg1.old.')).toBe(true);
      const result = await rotateEncryptionKeys(
        { store, keyring: during, audit: new AuditLog(store) },
        { type: 'system', id: 'test' },
      );
      expect(result.perKeyAfter).toMatchObject({ new: 1200 });
      expect(result.perKeyAfter.old ?? 0).toBe(0);
      // Still running: the journals were rewritten by the rotation itself, not by a clean stop.
      const text = (await journals()).join('');
      expect(text.includes('mg1.old.')).toBe(false);
      expect(text.includes('mg1.new.')).toBe(true);
      expect(await verify(store, after, expected, 'new')).toBe(1200);
    } finally {
      await store.close();
      await rm(dir, { recursive: true, force: true });
    }
  });
});

const redisUrl = redisUrlForTests();
describe.skipIf(!redisUrl)('redis', () => {
  rotationSuite('key rotation on Redis', async () => {
    const store = await createRedisStore({ url: redisUrl!, prefix: uniquePrefix('rotate') });
    return { store, cleanup: () => store.close() };
  });
});
