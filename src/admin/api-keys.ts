import { hash, randomBytes } from 'node:crypto';
import { systemClock, type Clock } from '../clock.js';
import { AppError } from '../errors.js';
import { VersionConflictError, type Documents } from '../store/store.js';
import { normalizePolicy, type KeyPolicy } from './key-policy.js';
import type { Actor, ApiScope, AuditRecorder } from './types.js';

/**
 * API keys for apps: `mgk_` + 43 url-safe base64 characters (32 random bytes). Only the SHA-256 hash is
 * stored (a random 256-bit key needs no slow hash), with a short prefix for display. Keys are looked up in
 * the store on every request, so a revocation on one instance is in force on every instance at once.
 *
 * Rotation creates a successor with the same name, scopes and policy; the old key keeps working until the end of
 * the grace period chosen, then stops by itself.
 */

export const API_KEYS = 'api_keys';
/** Index: SHA-256 of the key (hex) → key id. */
export const API_KEY_HASHES = 'api_key_hashes';

export const API_KEY_PATTERN = /^mgk_[A-Za-z0-9_-]{43}$/;
const DISPLAY_PREFIX_LENGTH = 'mgk_'.length + 6;
const LAST_USED_RESOLUTION_MS = 60_000;
const KEY_ID_CACHE_SIZE = 10_000;
export const MAX_GRACE_SECONDS = 30 * 24 * 3600;

export interface ApiKeyRecord {
  id: string;
  name: string;
  scopes: ApiScope[];
  /** First characters of the key, for recognising it in a list. Not enough to use it. */
  prefix: string;
  hash: string;
  createdAt: string;
  createdBy: string;
  lastUsedAt: string | null;
  revokedAt: string | null;
  revokedBy: string | null;
  /** Set when the key was rotated: it stops working at this time. */
  expiresAt: string | null;
  successorId: string | null;
  predecessorId: string | null;
  /** Limits on what the key may send (key-policy.ts); absent on keys without one. */
  policy?: KeyPolicy;
}

export type ApiKeyStatus = 'active' | 'expiring' | 'expired' | 'revoked';

/** What API responses and pages show: never the hash. */
export interface ApiKeyView {
  id: string;
  name: string;
  scopes: ApiScope[];
  prefix: string;
  status: ApiKeyStatus;
  createdAt: string;
  createdBy: string;
  lastUsedAt: string | null;
  revokedAt: string | null;
  expiresAt: string | null;
  successorId: string | null;
  predecessorId: string | null;
  policy?: KeyPolicy;
}

export interface CreatedApiKey extends ApiKeyView {
  /** The key itself; returned once, at creation. */
  key: string;
}

export function hashApiKey(key: string): string {
  // The one-shot hash: every API request hashes its key, and a Hash object per call cost twice as much.
  return hash('sha256', key, 'hex');
}

export function describeActor(actor: Actor): string {
  switch (actor.type) {
    case 'user':
      return `user:${actor.email}`;
    case 'api_key':
      return `api_key:${actor.id}`;
    default:
      return `${actor.type}:${actor.id}`;
  }
}

export class ApiKeyService {
  /** When this instance last wrote lastUsedAt per key; keeps it to one write a minute per key. */
  readonly #lastUsedWritten = new Map<string, number>();
  /**
   * Hash → key id, as in the API_KEY_HASHES index. Index entries are written once (CAS on create) and never
   * changed, so caching them is safe; it saves one of the two store reads of every API request.
   */
  readonly #keyIdByHash = new Map<string, string>();

  constructor(
    private readonly store: Documents,
    /** Every creation, revocation and rotation is audited here, whichever door it came through (page, API, CLI). */
    private readonly audit: AuditRecorder,
    /** Grace periods of rotated keys and the last-used throttle are measured on it. */
    private readonly clock: Clock = systemClock,
  ) {}

  status(record: ApiKeyRecord): ApiKeyStatus {
    if (record.revokedAt) return 'revoked';
    if (record.expiresAt) return Date.parse(record.expiresAt) <= this.clock.now() ? 'expired' : 'expiring';
    return 'active';
  }

  view(record: ApiKeyRecord): ApiKeyView {
    const { hash: _hash, revokedBy: _revokedBy, ...rest } = record;
    return { ...rest, status: this.status(record) };
  }

  async create(input: {
    name: string;
    scopes: ApiScope[];
    actor: Actor;
    ip?: string;
    policy?: KeyPolicy;
  }): Promise<CreatedApiKey> {
    const created = await this.#insert(input);
    await this.audit.record({
      actor: input.actor,
      action: 'api_key.create',
      target: `api_key:${created.id}`,
      outcome: 'success',
      ...(input.ip ? { ip: input.ip } : {}),
      detail: { name: created.name, scopes: created.scopes, prefix: created.prefix, ...created.policy },
    });
    return created;
  }

  async #insert(input: {
    name: string;
    scopes: ApiScope[];
    actor: Actor;
    predecessorId?: string;
    policy?: KeyPolicy | undefined;
  }): Promise<CreatedApiKey> {
    const policy = input.policy ? normalizePolicy(input.policy) : {};
    const key = `mgk_${randomBytes(32).toString('base64url')}`;
    const id = `key_${randomBytes(9).toString('base64url')}`;
    const record: ApiKeyRecord = {
      id,
      name: input.name,
      scopes: [...new Set(input.scopes)].sort(),
      prefix: key.slice(0, DISPLAY_PREFIX_LENGTH),
      hash: hashApiKey(key),
      createdAt: new Date(this.clock.now()).toISOString(),
      createdBy: describeActor(input.actor),
      lastUsedAt: null,
      revokedAt: null,
      revokedBy: null,
      expiresAt: null,
      successorId: null,
      predecessorId: input.predecessorId ?? null,
      ...(Object.keys(policy).length > 0 ? { policy } : {}),
    };
    // Key document first: an index entry never points at nothing.
    await this.store.put(API_KEYS, id, record, { ifVersion: 0 });
    await this.store.put(API_KEY_HASHES, record.hash, { keyId: id }, { ifVersion: 0 });
    return { ...this.view(record), key };
  }

  async list(): Promise<ApiKeyView[]> {
    const docs = await this.store.list<ApiKeyRecord>(API_KEYS);
    return docs.map((d) => this.view(d.value)).sort((a, b) => b.createdAt.localeCompare(a.createdAt));
  }

  /** A page in id order (`after` the last id of the previous page); one more than `limit` tells a next page. */
  async page(options: { limit: number; after?: string | undefined }): Promise<ApiKeyView[]> {
    const docs = await this.store.list<ApiKeyRecord>(API_KEYS, { limit: options.limit, after: options.after });
    return docs.map((d) => this.view(d.value));
  }

  async get(id: string): Promise<ApiKeyView | null> {
    const doc = await this.store.get<ApiKeyRecord>(API_KEYS, id);
    return doc ? this.view(doc.value) : null;
  }

  /** Revokes at once. Revoking a revoked key is a no-op that returns it unchanged. */
  async revoke(id: string, actor: Actor, ip?: string): Promise<ApiKeyView> {
    const key = await this.#revoke(id, actor);
    await this.audit.record({
      actor,
      action: 'api_key.revoke',
      target: `api_key:${id}`,
      outcome: 'success',
      ...(ip ? { ip } : {}),
      detail: { name: key.name, prefix: key.prefix },
    });
    return key;
  }

  async #revoke(id: string, actor: Actor): Promise<ApiKeyView> {
    for (;;) {
      const doc = await this.store.get<ApiKeyRecord>(API_KEYS, id);
      if (!doc) throw new AppError('not_found', { message: 'No API key with that id.' });
      if (doc.value.revokedAt) return this.view(doc.value);
      const next: ApiKeyRecord = {
        ...doc.value,
        revokedAt: new Date(this.clock.now()).toISOString(),
        revokedBy: describeActor(actor),
      };
      try {
        await this.store.put(API_KEYS, id, next, { ifVersion: doc.version });
        return this.view(next);
      } catch (err) {
        // A concurrent last-used write; read again and retry.
        if (!(err instanceof VersionConflictError)) throw err;
      }
    }
  }

  /** Replaces a key's policy (an empty policy removes it); in force on the key's next request, on every instance. */
  async setPolicy(id: string, policy: KeyPolicy, actor: Actor, ip?: string): Promise<ApiKeyView> {
    const normalized = normalizePolicy(policy);
    for (;;) {
      const doc = await this.store.get<ApiKeyRecord>(API_KEYS, id);
      if (!doc) throw new AppError('not_found', { message: 'No API key with that id.' });
      const { policy: _old, ...rest } = doc.value;
      const next: ApiKeyRecord = Object.keys(normalized).length > 0 ? { ...rest, policy: normalized } : rest;
      try {
        await this.store.put(API_KEYS, id, next, { ifVersion: doc.version });
      } catch (err) {
        // A concurrent last-used write; read again and retry.
        if (!(err instanceof VersionConflictError)) throw err;
        continue;
      }
      await this.audit.record({
        actor,
        action: 'api_key.update_policy',
        target: `api_key:${id}`,
        outcome: 'success',
        ...(ip ? { ip } : {}),
        detail: {
          name: next.name,
          serverId: normalized.serverId ?? null,
          allowedFrom: normalized.allowedFrom ?? null,
          rateLimitPerMinute: normalized.rateLimitPerMinute ?? null,
        },
      });
      return this.view(next);
    }
  }

  /**
   * Creates a successor with the same name and scopes; the old key stays valid for `graceSeconds`
   * (0 = stops now) and then stops. Returns the new key (shown once) and the old key's new state.
   */
  async rotate(
    id: string,
    graceSeconds: number,
    actor: Actor,
    ip?: string,
  ): Promise<{ successor: CreatedApiKey; previous: ApiKeyView }> {
    const rotated = await this.#rotate(id, graceSeconds, actor);
    await this.audit.record({
      actor,
      action: 'api_key.rotate',
      target: `api_key:${id}`,
      outcome: 'success',
      ...(ip ? { ip } : {}),
      detail: { successorId: rotated.successor.id, graceSeconds, expiresAt: rotated.previous.expiresAt },
    });
    return rotated;
  }

  async #rotate(
    id: string,
    graceSeconds: number,
    actor: Actor,
  ): Promise<{ successor: CreatedApiKey; previous: ApiKeyView }> {
    if (!Number.isInteger(graceSeconds) || graceSeconds < 0 || graceSeconds > MAX_GRACE_SECONDS) {
      throw new AppError('validation_failed', {
        details: [{ field: 'graceSeconds', message: `must be a whole number from 0 to ${MAX_GRACE_SECONDS}` }],
      });
    }
    const doc = await this.store.get<ApiKeyRecord>(API_KEYS, id);
    if (!doc) throw new AppError('not_found', { message: 'No API key with that id.' });
    const status = this.status(doc.value);
    if (status === 'revoked' || status === 'expired')
      throw new AppError('conflict', { message: 'A revoked or expired key cannot be rotated; create a new one.' });
    if (doc.value.successorId)
      throw new AppError('conflict', { message: 'This key was already rotated; rotate its successor instead.' });
    const successor = await this.#insert({
      name: doc.value.name,
      scopes: doc.value.scopes,
      actor,
      predecessorId: id,
      policy: doc.value.policy,
    });
    const expiresAt = new Date(this.clock.now() + graceSeconds * 1000).toISOString();
    for (let current = doc; ;) {
      const next: ApiKeyRecord = { ...current.value, expiresAt, successorId: successor.id };
      try {
        await this.store.put(API_KEYS, id, next, { ifVersion: current.version });
        return { successor, previous: this.view(next) };
      } catch (err) {
        if (!(err instanceof VersionConflictError)) throw err;
        const again = await this.store.get<ApiKeyRecord>(API_KEYS, id);
        if (!again || again.value.revokedAt) {
          // Revoked meanwhile: the old key stays revoked, the successor is still valid.
          return { successor, previous: again ? this.view(again.value) : this.view(next) };
        }
        current = again;
      }
    }
  }

  /** The key's record when it is well-formed, known, not revoked and not expired; null otherwise. */
  async authenticate(key: string): Promise<ApiKeyView | null> {
    if (!API_KEY_PATTERN.test(key)) return null;
    const hash = hashApiKey(key);
    let keyId = this.#keyIdByHash.get(hash);
    if (keyId === undefined) {
      const index = await this.store.get<{ keyId: string }>(API_KEY_HASHES, hash);
      if (!index) return null;
      keyId = index.value.keyId;
      if (this.#keyIdByHash.size >= KEY_ID_CACHE_SIZE) this.#keyIdByHash.clear();
      this.#keyIdByHash.set(hash, keyId);
    }
    // The key document itself is read on every request: revocation and expiry are in force at once everywhere.
    const doc = await this.store.get<ApiKeyRecord>(API_KEYS, keyId);
    if (!doc || doc.value.hash !== hash) return null;
    const status = this.status(doc.value);
    if (status === 'revoked' || status === 'expired') return null;
    await this.#touch(doc.value, doc.version);
    return this.view(doc.value);
  }

  async #touch(record: ApiKeyRecord, version: number): Promise<void> {
    const now = this.clock.now();
    const stored = record.lastUsedAt ? Date.parse(record.lastUsedAt) : 0;
    const written = this.#lastUsedWritten.get(record.id) ?? 0;
    if (now - Math.max(stored, written) < LAST_USED_RESOLUTION_MS) return;
    this.#lastUsedWritten.set(record.id, now);
    try {
      // Compare-and-set: a revocation written meanwhile must never be overwritten by this.
      await this.store.put(
        API_KEYS,
        record.id,
        { ...record, lastUsedAt: new Date(now).toISOString() },
        { ifVersion: version },
      );
    } catch (err) {
      if (!(err instanceof VersionConflictError)) throw err;
    }
  }
}
