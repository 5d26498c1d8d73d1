import type { SealContext } from './keyring.js';
import { isSealed } from './sealed-format.js';

/**
 * The registry of sealed fields: the only places in the store where a sealed value may live, and so the
 * only places key usage, the start-up key check and rotation look. Anything else in a document (message
 * bodies, names, audit details: text an API key or a user chose) is never read as key material, however
 * much it looks like `mg1.<kid>.…`.
 *
 * Keyring.seal refuses a context that is not registered here, so a new secret field cannot be sealed
 * (and then escape rotation) until it is listed.
 */

export interface SealedField {
  collection: string;
  /** Dotted path inside the document value; `*` stands for any array index or object key. */
  path: string;
}

/** Every secret mailgate keeps at rest. */
export const SEALED_FIELDS: readonly SealedField[] = [
  { collection: 'smtp_servers', path: 'password' },
  { collection: 'oauth_integrations', path: 'clientSecret' },
  { collection: 'oauth_integrations', path: 'clientCertificate' },
  { collection: 'oauth_integrations', path: 'serviceAccountKey' },
  { collection: 'oauth_grants', path: 'tokens.accessToken' },
  { collection: 'oauth_grants', path: 'tokens.refreshToken' },
  { collection: 'oauth_transactions', path: 'codeVerifier' },
  { collection: 'notify_channels', path: 'secret' },
  { collection: 'reconnect_transactions', path: 'codeVerifier' },
  { collection: 'submission_tls', path: 'key' },
  // A new API key between the form's post and the page after its redirect (in the session store, not a document).
  { collection: 'sessions', path: 'newApiKey' },
];

type Visit = (sealed: string, field: string) => string;

function matches(pattern: readonly string[], field: readonly string[]): boolean {
  return pattern.length === field.length && pattern.every((seg, i) => seg === '*' || seg === field[i]);
}

/** Replaces the sealed strings at `segments` below `node` with what `visit` returns; unchanged nodes are kept as they are. */
function mapAt(node: unknown, segments: readonly string[], at: string, visit: Visit): unknown {
  const [segment, ...rest] = segments;
  if (segment === undefined) return isSealed(node) ? visit(node, at) : node;
  const child = (key: string) => (at === '' ? key : `${at}.${key}`);
  if (Array.isArray(node)) {
    if (segment !== '*' && !/^(0|[1-9][0-9]*)$/.test(segment)) return node;
    let changed = false;
    const out = (node as unknown[]).map((item, i) => {
      if (segment !== '*' && String(i) !== segment) return item;
      const next = mapAt(item, rest, child(String(i)), visit);
      changed ||= next !== item;
      return next;
    });
    return changed ? out : node;
  }
  if (node === null || typeof node !== 'object') return node;
  const record = node as Record<string, unknown>;
  const keys = segment === '*' ? Object.keys(record) : Object.hasOwn(record, segment) ? [segment] : [];
  let out: Record<string, unknown> | null = null;
  for (const key of keys) {
    const next = mapAt(record[key], rest, child(key), visit);
    if (next !== record[key]) (out ??= { ...record })[key] = next;
  }
  return out ?? node;
}

export class SealedFields {
  readonly #byCollection = new Map<string, string[][]>();

  constructor(fields: readonly SealedField[]) {
    for (const { collection, path } of fields) {
      const segments = path.split('.');
      if (collection === '' || segments.some((s) => s === ''))
        throw new Error(`bad sealed field ${collection}#${path}`);
      const list = this.#byCollection.get(collection) ?? [];
      list.push(segments);
      this.#byCollection.set(collection, list);
    }
  }

  /** Collections that can hold sealed values. */
  get collections(): string[] {
    return [...this.#byCollection.keys()];
  }

  /** Whether a value sealed for `ctx` sits in a registered field. */
  covers(ctx: SealContext): boolean {
    const field = ctx.field.split('.');
    return (this.#byCollection.get(ctx.collection) ?? []).some((pattern) => matches(pattern, field));
  }

  /**
   * A copy of a document value of `collection` in which every sealed string in a registered field is
   * replaced by what `visit` returns for it and its field path; the value itself when nothing changed.
   */
  map(collection: string, value: unknown, visit: Visit): unknown {
    let out = value;
    for (const pattern of this.#byCollection.get(collection) ?? []) out = mapAt(out, pattern, '', visit);
    return out;
  }

  /** Calls `visit` for every sealed string in a registered field of a document value of `collection`. */
  forEach(collection: string, value: unknown, visit: (sealed: string, field: string) => void): void {
    this.map(collection, value, (sealed, field) => {
      visit(sealed, field);
      return sealed;
    });
  }
}
