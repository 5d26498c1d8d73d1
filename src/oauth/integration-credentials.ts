import type { Keyring } from '../crypto/keyring.js';
import type { ErrorDetail } from '../errors.js';
import { parseClientCertificate, parseServiceAccountKey } from './app-credentials.js';
import type { AppCredential } from './client.js';
import { appOnlyGrantTypeOf, type OAuthProviderKind } from './providers/index.js';

/**
 * The credentials of an integration, by grant type. `authorization_code` (the Authorize button) and
 * `client_credentials` with a client secret use `clientSecret`; `client_credentials` may instead use
 * `clientCertificate` (one PEM: certificate + private key, sent as a private_key_jwt assertion);
 * `service_account` uses `serviceAccountKey` (Google's JSON key). All three are write-only and sealed with the
 * record's identity; only what is safe to show (thumbprint, expiry, service-account email) is kept in clear.
 */

export const GRANT_TYPES = ['authorization_code', 'client_credentials', 'service_account'] as const;
export type GrantType = (typeof GRANT_TYPES)[number];

export const CREDENTIAL_FIELDS = ['clientSecret', 'clientCertificate', 'serviceAccountKey'] as const;
export type CredentialField = (typeof CREDENTIAL_FIELDS)[number];

/** Plaintext credentials as typed in (any subset). */
export type CredentialInput = Partial<Record<CredentialField, string | undefined>>;

export interface CertificateInfo {
  thumbprint: string;
  notAfter: string;
  subject: string;
}

export interface ServiceAccountInfo {
  clientEmail: string;
  /** The account's OAuth client id (what Workspace's domain-wide delegation page asks for). */
  clientId: string | null;
  tokenUri: string;
  privateKeyId: string | null;
}

/** The credential fields of a stored integration (sealed values, or null). */
export interface StoredCredentials {
  grantType: GrantType;
  clientSecret: string | null;
  clientCertificate: string | null;
  serviceAccountKey: string | null;
  certificate: CertificateInfo | null;
  serviceAccount: ServiceAccountInfo | null;
}

/** Integrations stored before app-only credentials existed have no grantType: they authorize users. */
export function grantTypeOf(value: { grantType?: GrantType | undefined }): GrantType {
  return value.grantType ?? 'authorization_code';
}

export function isAppOnly(value: { grantType?: GrantType | undefined }): boolean {
  return grantTypeOf(value) !== 'authorization_code';
}

/** Which credential fields a grant type accepts. */
const ACCEPTS: Record<GrantType, readonly CredentialField[]> = {
  authorization_code: ['clientSecret'],
  client_credentials: ['clientSecret', 'clientCertificate'],
  service_account: ['serviceAccountKey'],
};

/** Checks the grant type against the provider and the credentials given; each problem names its field. */
export function checkCredentials(
  provider: OAuthProviderKind,
  grantType: GrantType,
  input: CredentialInput,
  options: { creating: boolean; allowInsecure: boolean },
): ErrorDetail[] {
  const details: ErrorDetail[] = [];
  if (grantType !== 'authorization_code' && appOnlyGrantTypeOf(provider) !== grantType) {
    const own = appOnlyGrantTypeOf(provider);
    details.push({
      field: 'grantType',
      message: own
        ? `${provider} integrations use ${own} for app-only access, not ${grantType}`
        : `${provider} integrations only support authorization_code`,
    });
    return details;
  }
  const accepted = ACCEPTS[grantType];
  for (const field of CREDENTIAL_FIELDS) {
    if (input[field] && !accepted.includes(field))
      details.push({ field, message: `not used with grantType ${grantType}` });
  }
  const given = accepted.filter((f) => input[f]);
  if (given.length > 1) details.push({ field: given[1]!, message: `give either ${accepted.join(' or ')}, not both` });
  if (options.creating && given.length === 0)
    details.push({ field: accepted[0]!, message: accepted.length > 1 ? `required (or ${accepted[1]})` : 'required' });
  if (input.clientCertificate && accepted.includes('clientCertificate')) {
    const parsed = parseClientCertificate(input.clientCertificate);
    if ('error' in parsed) details.push(parsed.error);
  }
  if (input.serviceAccountKey && accepted.includes('serviceAccountKey')) {
    const parsed = parseServiceAccountKey(input.serviceAccountKey, { allowInsecure: options.allowInsecure });
    if ('error' in parsed) details.push(parsed.error);
  }
  return details;
}

/**
 * The stored fields after `input` replaces the credential it gives (checked before). A new certificate or key
 * replaces the other kind, so exactly one credential is ever in use.
 */
export function sealCredentials(
  keyring: Keyring,
  collection: string,
  id: string,
  input: CredentialInput,
  current: Omit<StoredCredentials, 'grantType'>,
  options: { allowInsecure: boolean },
): Omit<StoredCredentials, 'grantType'> & { changed: CredentialField | null } {
  const seal = (field: CredentialField, value: string) => keyring.seal(value, { collection, id, field });
  if (input.clientSecret)
    return {
      ...current,
      clientSecret: seal('clientSecret', input.clientSecret),
      clientCertificate: null,
      certificate: null,
      changed: 'clientSecret',
    };
  if (input.clientCertificate) {
    const parsed = parseClientCertificate(input.clientCertificate);
    if ('error' in parsed) throw new Error(parsed.error.message);
    const { thumbprint, notAfter, subject } = parsed.value;
    return {
      ...current,
      clientSecret: null,
      clientCertificate: seal('clientCertificate', input.clientCertificate),
      certificate: { thumbprint, notAfter, subject },
      changed: 'clientCertificate',
    };
  }
  if (input.serviceAccountKey) {
    const parsed = parseServiceAccountKey(input.serviceAccountKey, options);
    if ('error' in parsed) throw new Error(parsed.error.message);
    const { clientEmail, clientId, tokenUri, privateKeyId } = parsed.value;
    return {
      ...current,
      serviceAccountKey: seal('serviceAccountKey', input.serviceAccountKey),
      serviceAccount: { clientEmail, clientId, tokenUri, privateKeyId },
      changed: 'serviceAccountKey',
    };
  }
  return { ...current, changed: null };
}

/** Opens the stored credential of a record into plaintext input (for building a client). */
export function openCredentials(
  keyring: Keyring,
  collection: string,
  id: string,
  stored: Omit<StoredCredentials, 'grantType' | 'certificate' | 'serviceAccount'>,
): CredentialInput {
  const out: CredentialInput = {};
  for (const field of CREDENTIAL_FIELDS) {
    const sealed = stored[field];
    if (sealed) out[field] = keyring.open(sealed, { collection, id, field });
  }
  return out;
}

/** What the OAuth client is built with: a client secret, or an app credential read from its PEM or JSON. */
export function clientAuthOf(
  input: CredentialInput,
  options: { allowInsecure: boolean },
): { clientSecret?: string; credential?: AppCredential } {
  if (input.serviceAccountKey) {
    const parsed = parseServiceAccountKey(input.serviceAccountKey, options);
    if ('error' in parsed) throw new Error(parsed.error.message);
    return { credential: { kind: 'service_account', key: parsed.value } };
  }
  if (input.clientCertificate) {
    const parsed = parseClientCertificate(input.clientCertificate);
    if ('error' in parsed) throw new Error(parsed.error.message);
    const { privateKeyPem, x5t, x5tS256 } = parsed.value;
    return { credential: { kind: 'certificate', privateKeyPem, x5t, x5tS256 } };
  }
  return input.clientSecret ? { clientSecret: input.clientSecret } : {};
}

/** When the credential stops working, when known: a certificate says so itself. */
export function credentialExpiry(input: CredentialInput): string | null {
  if (!input.clientCertificate) return null;
  const parsed = parseClientCertificate(input.clientCertificate);
  return 'value' in parsed ? parsed.value.notAfter : null;
}
