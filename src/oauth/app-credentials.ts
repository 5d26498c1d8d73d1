import {
  createHash,
  createPrivateKey,
  randomBytes,
  sign,
  webcrypto,
  X509Certificate,
  type KeyObject,
} from 'node:crypto';
import type { ErrorDetail } from '../errors.js';

/**
 * App-only credentials, read and checked before anything is stored: a Microsoft client certificate (one PEM
 * with the certificate and its private key) and a Google service-account key (the JSON file). Pure: no
 * network, no store. The values themselves are secrets; what these functions return besides the key (a
 * thumbprint, an email, a date) is safe to show.
 */

export interface ClientCertificate {
  /** The private key as PKCS#8 PEM (secret). */
  privateKeyPem: string;
  /** Base64url SHA-1 and SHA-256 of the DER certificate: the JWS `x5t` and `x5t#S256` headers Microsoft matches. */
  x5t: string;
  x5tS256: string;
  /** The hex SHA-1 thumbprint, as the Entra admin center lists it. */
  thumbprint: string;
  /** YYYY-MM-DD after which the certificate is no longer valid. */
  notAfter: string;
  subject: string;
}

export interface ServiceAccountKey {
  clientEmail: string;
  clientId: string | null;
  privateKeyPem: string;
  privateKeyId: string | null;
  tokenUri: string;
}

const CERT_BLOCK = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/;
const KEY_BLOCK = /-----BEGIN (?:RSA |EC )?PRIVATE KEY-----[\s\S]+?-----END (?:RSA |EC )?PRIVATE KEY-----/;

type Parsed<T> = { value: T } | { error: ErrorDetail };

const fail = (field: string, message: string): { error: ErrorDetail } => ({ error: { field, message } });

function privateKeyOf(pem: string): KeyObject | null {
  try {
    return createPrivateKey(pem);
  } catch {
    return null;
  }
}

/** A PEM holding a certificate and the private key that belongs to it (an encrypted key is refused). */
export function parseClientCertificate(pem: string, field = 'clientCertificate'): Parsed<ClientCertificate> {
  const certPem = CERT_BLOCK.exec(pem)?.[0];
  const keyPem = KEY_BLOCK.exec(pem)?.[0];
  if (!certPem)
    return fail(field, 'no "-----BEGIN CERTIFICATE-----" block: paste the certificate and its private key as PEM');
  if (!keyPem)
    return fail(
      field,
      /ENCRYPTED PRIVATE KEY/.test(pem)
        ? 'the private key is encrypted: export it without a passphrase (openssl pkcs8 -nocrypt)'
        : 'no "-----BEGIN PRIVATE KEY-----" block: the PEM must hold the private key as well as the certificate',
    );
  let cert: X509Certificate;
  try {
    cert = new X509Certificate(certPem);
  } catch {
    return fail(field, 'the certificate block is not a valid X.509 certificate');
  }
  const key = privateKeyOf(keyPem);
  if (!key) return fail(field, 'the private key block is not a valid private key');
  if (key.asymmetricKeyType !== 'rsa' && key.asymmetricKeyType !== 'ec')
    return fail(field, 'only RSA and EC (P-256) keys are supported');
  if (!cert.checkPrivateKey(key)) return fail(field, 'the private key does not belong to this certificate');
  const der = cert.raw;
  return {
    value: {
      privateKeyPem: key.export({ type: 'pkcs8', format: 'pem' }).toString(),
      x5t: createHash('sha1').update(der).digest('base64url'),
      x5tS256: createHash('sha256').update(der).digest('base64url'),
      thumbprint: createHash('sha1').update(der).digest('hex').toUpperCase(),
      notAfter: new Date(cert.validTo).toISOString().slice(0, 10),
      subject: cert.subject.replace(/\n/g, ', '),
    },
  };
}

/** The JSON key file of a Google service account; `token_uri` must be https (http only when allowed, for tests). */
export function parseServiceAccountKey(
  json: string,
  options: { allowInsecure: boolean },
  field = 'serviceAccountKey',
): Parsed<ServiceAccountKey> {
  let data: Record<string, unknown>;
  try {
    const parsed: unknown = JSON.parse(json);
    if (!parsed || typeof parsed !== 'object' || Array.isArray(parsed)) throw new Error('not an object');
    data = parsed as Record<string, unknown>;
  } catch {
    return fail(
      field,
      'not JSON: paste the whole key file downloaded from Google Cloud (IAM → Service accounts → Keys)',
    );
  }
  const str = (k: string) => {
    const v = data[k];
    return typeof v === 'string' && v !== '' ? v : null;
  };
  if (data.type !== undefined && data.type !== 'service_account')
    return fail(field, `the key file is of type ${JSON.stringify(data.type)}, expected "service_account"`);
  const clientEmail = str('client_email');
  if (!clientEmail || !clientEmail.includes('@')) return fail(field, 'the key file has no client_email');
  const keyPem = str('private_key');
  if (!keyPem) return fail(field, 'the key file has no private_key');
  const key = privateKeyOf(keyPem);
  if (!key || key.asymmetricKeyType !== 'rsa') return fail(field, 'the private_key of the key file is not an RSA key');
  const tokenUri = str('token_uri');
  if (!tokenUri) return fail(field, 'the key file has no token_uri');
  let url: URL;
  try {
    url = new URL(tokenUri);
  } catch {
    return fail(field, 'the token_uri of the key file is not a URL');
  }
  if (url.protocol !== 'https:' && !(url.protocol === 'http:' && options.allowInsecure))
    return fail(field, 'the token_uri of the key file must be https');
  return {
    value: {
      clientEmail,
      clientId: str('client_id'),
      privateKeyPem: key.export({ type: 'pkcs8', format: 'pem' }).toString(),
      privateKeyId: str('private_key_id'),
      tokenUri,
    },
  };
}

/** A compact JWS (RS256 or ES256 by the key's type). */
export function signJwt(privateKeyPem: string, header: Record<string, unknown>, payload: Record<string, unknown>) {
  const key = createPrivateKey(privateKeyPem);
  const alg = key.asymmetricKeyType === 'ec' ? 'ES256' : 'RS256';
  const input = `${Buffer.from(JSON.stringify({ ...header, alg, typ: 'JWT' })).toString('base64url')}.${Buffer.from(JSON.stringify(payload)).toString('base64url')}`;
  const signature = sign('sha256', Buffer.from(input), alg === 'ES256' ? { key, dsaEncoding: 'ieee-p1363' } : key);
  return `${input}.${signature.toString('base64url')}`;
}

/**
 * The RFC 7523 assertion of a service account: issued by its email, for the token endpoint, with `sub` = the
 * mailbox to act as (domain-wide delegation). Google accepts at most one hour of lifetime.
 */
export function serviceAccountAssertion(
  key: ServiceAccountKey,
  request: { scope: string; subject?: string | undefined; nowSec: number },
): string {
  return signJwt(key.privateKeyPem, key.privateKeyId ? { kid: key.privateKeyId } : {}, {
    iss: key.clientEmail,
    ...(request.subject ? { sub: request.subject } : {}),
    aud: key.tokenUri,
    scope: request.scope,
    iat: request.nowSec,
    exp: request.nowSec + 3600,
    jti: randomBytes(12).toString('base64url'),
  });
}

/** WebCrypto wants a CryptoKey: RS256 for RSA keys, ES256 for P-256 keys. */
export async function signingKey(privateKeyPem: string): Promise<webcrypto.CryptoKey> {
  const key = createPrivateKey(privateKeyPem);
  const algorithm =
    key.asymmetricKeyType === 'ec'
      ? { name: 'ECDSA', namedCurve: 'P-256' }
      : { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' };
  return webcrypto.subtle.importKey('pkcs8', key.export({ type: 'pkcs8', format: 'der' }), algorithm, false, ['sign']);
}
