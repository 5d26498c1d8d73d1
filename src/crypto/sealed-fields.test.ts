import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { Keyring } from './keyring.js';
import { SealedFields } from './sealed-fields.js';

const fields = new SealedFields([
  { collection: 'grants', path: 'tokens.refreshToken' },
  { collection: 'integrations', path: 'secrets.*.value' },
]);
const ring = new Keyring([{ id: 'k1', key: randomBytes(32) }], { sealedFields: fields });

describe('SealedFields', () => {
  it('covers exactly the registered paths, `*` standing for one index or key', () => {
    expect(fields.covers({ collection: 'grants', id: 'g', field: 'tokens.refreshToken' })).toBe(true);
    expect(fields.covers({ collection: 'grants', id: 'g', field: 'tokens' })).toBe(false);
    expect(fields.covers({ collection: 'grants', id: 'g', field: 'tokens.refreshToken.x' })).toBe(false);
    expect(fields.covers({ collection: 'messages', id: 'm', field: 'tokens.refreshToken' })).toBe(false);
    expect(fields.covers({ collection: 'integrations', id: 'i', field: 'secrets.3.value' })).toBe(true);
    expect(fields.covers({ collection: 'integrations', id: 'i', field: 'secrets.3.note' })).toBe(false);
    expect(fields.collections).toEqual(['grants', 'integrations']);
  });

  it('visits only sealed strings in registered fields, with their paths, and copies only what changed', () => {
    const sealedA = ring.seal('a', { collection: 'integrations', id: 'i', field: 'secrets.0.value' });
    const sealedB = ring.seal('b', { collection: 'integrations', id: 'i', field: 'secrets.1.value' });
    const doc = {
      name: sealedA, // same shape, not a registered field
      secrets: [{ value: sealedA, note: sealedB }, { value: sealedB }, { value: 'plain text' }, { other: 1 }],
      untouched: { deep: [1, 2] },
    };
    const seen: string[] = [];
    fields.forEach('integrations', doc, (_sealed, field) => seen.push(field));
    expect(seen).toEqual(['secrets.0.value', 'secrets.1.value']);

    const mapped = fields.map('integrations', doc, (sealed, field) =>
      field === 'secrets.1.value' ? `new:${sealed}` : sealed,
    ) as typeof doc;
    expect(mapped.secrets[1]).toEqual({ value: `new:${sealedB}` });
    expect(mapped.secrets[0]).toBe(doc.secrets[0]);
    expect(mapped.untouched).toBe(doc.untouched);
    expect(mapped.name).toBe(sealedA);
    expect(doc.secrets[1]!.value).toBe(sealedB);
    expect(fields.map('integrations', doc, (sealed) => sealed)).toBe(doc);
    // Other collections are never read, whatever they hold.
    expect(fields.map('messages', { secrets: [{ value: sealedA }] }, () => 'changed')).toEqual({
      secrets: [{ value: sealedA }],
    });
  });

  it('a keyring refuses to seal for a field that is not registered', () => {
    expect(() => ring.seal('x', { collection: 'messages', id: 'm', field: 'text' })).toThrow(
      /messages#text is not a registered sealed field/,
    );
    expect(() =>
      new Keyring([{ id: 'k1', key: randomBytes(32) }]).seal('x', { collection: 'things', id: 't', field: 'secret' }),
    ).toThrow(/not a registered sealed field/);
  });
});
