import { existsSync } from 'node:fs';
import { chmod, mkdtemp, open, readFile, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { Keyring } from './keyring.js';
import { loadOrCreateLocalSecrets, readLocalSecrets, resolveSecrets } from './local-secrets.js';

describe('local secrets of the embedded default', () => {
  let root: string;
  beforeEach(async () => {
    root = await mkdtemp(path.join(os.tmpdir(), 'mailgate-secrets-'));
  });
  afterEach(async () => {
    await rm(root, { recursive: true, force: true });
  });

  it('creates a 0600 file in a 0700 folder once, then reuses it', async () => {
    const dataDir = path.join(root, 'data');
    const first = await loadOrCreateLocalSecrets(dataDir);
    expect(first.created).toBe(true);
    expect(first.path).toBe(path.join(dataDir, 'secrets.json'));
    expect((await stat(first.path)).mode & 0o777).toBe(0o600);
    expect((await stat(dataDir)).mode & 0o777).toBe(0o700);
    expect(first.encryptionKeys).toHaveLength(1);
    expect(first.encryptionKeys[0]!.id).toBe('local1');
    expect(first.encryptionKeys[0]!.key).toHaveLength(32);
    expect(first.sessionSecrets[0]!.length).toBeGreaterThanOrEqual(32);

    const second = await loadOrCreateLocalSecrets(dataDir);
    expect(second.created).toBe(false);
    expect(second.encryptionKeys[0]!.key.equals(first.encryptionKeys[0]!.key)).toBe(true);
    expect(second.sessionSecrets).toEqual(first.sessionSecrets);
    // A value sealed after the first start opens after the second.
    const sealed = new Keyring(first.encryptionKeys).seal('pw', {
      collection: 'smtp_servers',
      id: '1',
      field: 'password',
    });
    expect(
      new Keyring(second.encryptionKeys).open(sealed, { collection: 'smtp_servers', id: '1', field: 'password' }),
    ).toBe('pw');
  });

  it('syncs the new key file before it takes its name, and the folder after', async () => {
    const dataDir = path.join(root, 'data');
    const file = path.join(dataDir, 'secrets.json');
    const probe = await open(path.join(root, 'probe'), 'w');
    await probe.close();
    const proto = Object.getPrototypeOf(probe) as typeof probe;
    // eslint-disable-next-line @typescript-eslint/unbound-method
    const sync = proto.sync;
    const named: boolean[] = [];
    const spy = vi.spyOn(proto, 'sync').mockImplementation(async function (this: typeof probe) {
      named.push(existsSync(file));
      await sync.call(this);
    });
    try {
      expect((await loadOrCreateLocalSecrets(dataDir)).created).toBe(true);
    } finally {
      spy.mockRestore();
    }
    expect(named).toEqual([false, true]);
  });

  it('two processes starting at once end up with one key', async () => {
    const results = await Promise.all(Array.from({ length: 8 }, () => loadOrCreateLocalSecrets(root)));
    expect(results.filter((r) => r.created)).toHaveLength(1);
    const keys = new Set(results.map((r) => r.encryptionKeys[0]!.key.toString('hex')));
    expect(keys.size).toBe(1);
  });

  it('tightens a file readable by others and says so', async () => {
    const first = await loadOrCreateLocalSecrets(root);
    await chmod(first.path, 0o644);
    const again = await loadOrCreateLocalSecrets(root);
    expect(again.warnings.join()).toMatch(/readable by other users/);
    expect((await stat(first.path)).mode & 0o777).toBe(0o600);
  });

  it('refuses a damaged file with a message naming it, and never overwrites it', async () => {
    const file = path.join(root, 'secrets.json');
    await writeFile(file, JSON.stringify({ encryptionKeys: [{ id: 'k1', key: 'c2hvcnQ=' }], sessionSecrets: [] }), {
      mode: 0o600,
    });
    await expect(loadOrCreateLocalSecrets(root)).rejects.toThrow(
      new RegExp(`${file}.*\\n.*k1.*5 bytes[\\s\\S]*sessionSecrets`),
    );
    await writeFile(file, '{not json');
    await expect(loadOrCreateLocalSecrets(root)).rejects.toThrow(/not valid JSON/);
    expect(await readFile(file, 'utf8')).toBe('{not json');
  });
});

describe('resolveSecrets', () => {
  let root: string;
  beforeEach(async () => {
    root = await mkdtemp(path.join(os.tmpdir(), 'mailgate-resolve-'));
  });
  afterEach(async () => {
    await rm(root, { recursive: true, force: true });
  });

  it('uses the environment when both are set and writes no file', async () => {
    const keys = [{ id: 'env1', key: Buffer.alloc(32, 1) }];
    const resolved = await resolveSecrets({
      MAILGATE_DATA_DIR: root,
      encryptionKeys: keys,
      sessionSecrets: ['s'.repeat(32)],
    });
    expect(resolved.local).toBeNull();
    expect(resolved.encryptionKeys[0]!.id).toBe('env1');
    expect(await readLocalSecrets(root)).toBeNull();
  });

  it('falls back to the file for what the environment lacks', async () => {
    const resolved = await resolveSecrets({
      MAILGATE_DATA_DIR: root,
      encryptionKeys: undefined,
      sessionSecrets: ['s'.repeat(32)],
    });
    expect(resolved.local?.created).toBe(true);
    expect(resolved.encryptionKeys[0]!.id).toBe('local1');
    expect(resolved.sessionSecrets).toEqual(['s'.repeat(32)]);
    expect((await readLocalSecrets(root))?.encryptionKeys[0]!.id).toBe('local1');
  });
});
