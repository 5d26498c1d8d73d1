import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BlobFiles } from './blob-files.js';

// Blob files are written a megabyte of characters at a time: what is read back must be the value, whichever
// characters fall on the edges of the pieces.

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'mailgate-blob-files-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('BlobFiles', () => {
  const piece = 1024 * 1024;
  const values: Record<string, string> = {
    'a surrogate pair across the first edge': `${'a'.repeat(piece - 1)}😀b`,
    'a three-byte character on the edge': `${'a'.repeat(piece - 1)}件名`,
    'pairs and non-ASCII across several pieces': '😀é件'.repeat(900_000),
    'ASCII of exactly two pieces': 'x'.repeat(2 * piece),
    empty: '',
  };
  Object.entries(values).forEach(([label, value], i) => {
    it(label, async () => {
      const blobs = new BlobFiles(dir, false);
      await blobs.write(`${i}.json`, value);
      expect((await blobs.read(`${i}.json`)) === value).toBe(true);
    });
  });
});
