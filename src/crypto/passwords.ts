import { randomBytes, scrypt, timingSafeEqual, type ScryptOptions } from 'node:crypto';

/**
 * Password hashing with scrypt (N=2^17, r=8, p=1: about 128 MiB and a few hundred ms per hash, so a
 * stolen user file is slow to attack). The parameters are stored in the hash, so they can be raised later
 * and old hashes still verify. Format: `scrypt$<log2 N>$<r>$<p>$<salt base64url>$<hash base64url>`.
 */

export interface ScryptParams {
  log2N: number;
  r: number;
  p: number;
}

export const DEFAULT_SCRYPT: ScryptParams = { log2N: 17, r: 8, p: 1 };
const KEY_BYTES = 32;
const SALT_BYTES = 16;

function derive(password: string, salt: Buffer, params: ScryptParams): Promise<Buffer> {
  const N = 2 ** params.log2N;
  // scrypt needs 128 * N * r bytes; Node's default maxmem (32 MiB) is below that for N=2^17.
  const options: ScryptOptions = { N, r: params.r, p: params.p, maxmem: 128 * N * params.r * 2 };
  return new Promise((resolve, reject) => {
    scrypt(password.normalize('NFC'), salt, KEY_BYTES, options, (err, key) => (err ? reject(err) : resolve(key)));
  });
}

export async function hashPassword(password: string, params: ScryptParams = DEFAULT_SCRYPT): Promise<string> {
  const salt = randomBytes(SALT_BYTES);
  const key = await derive(password, salt, params);
  return ['scrypt', params.log2N, params.r, params.p, salt.toString('base64url'), key.toString('base64url')].join('$');
}

function parseHash(stored: string): { params: ScryptParams; salt: Buffer; key: Buffer } | null {
  const parts = stored.split('$');
  if (parts.length !== 6 || parts[0] !== 'scrypt') return null;
  const [log2N, r, p] = parts.slice(1, 4).map(Number) as [number, number, number];
  if (![log2N, r, p].every((n) => Number.isInteger(n) && n > 0) || log2N > 22 || r > 32 || p > 16) return null;
  const salt = Buffer.from(parts[4] ?? '', 'base64url');
  const key = Buffer.from(parts[5] ?? '', 'base64url');
  if (salt.length < 8 || key.length !== KEY_BYTES) return null;
  return { params: { log2N, r, p }, salt, key };
}

/** Constant-time comparison of the derived key; false (never an exception) for a malformed stored hash. */
export async function verifyPassword(password: string, stored: string): Promise<boolean> {
  const parsed = parseHash(stored);
  if (!parsed) return false;
  const candidate = await derive(password, parsed.salt, parsed.params);
  return timingSafeEqual(candidate, parsed.key);
}

/**
 * A hash of a random password nobody knows (it was thrown away), with the default parameters. Checking
 * a login for an unknown email against it costs the same time as a real check, so response times do not
 * reveal which accounts exist; being a constant, it costs nothing at start and nothing extra on first use.
 */
const DUMMY_HASH = 'scrypt$17$8$1$9311sHkrCLAkGEVIbMMlPw$7OIdHgdzbgY6RjIoDZosrylM-JNKfdIVx0PLoUmfNOY';

export function createDummyVerifier(params: ScryptParams = DEFAULT_SCRYPT): (password: string) => Promise<false> {
  const isDefault =
    params.log2N === DEFAULT_SCRYPT.log2N && params.r === DEFAULT_SCRYPT.r && params.p === DEFAULT_SCRYPT.p;
  let dummy: Promise<string> | undefined = isDefault ? Promise.resolve(DUMMY_HASH) : undefined;
  return async (password) => {
    dummy ??= hashPassword(randomBytes(24).toString('base64url'), params);
    await verifyPassword(password, await dummy);
    return false;
  };
}
