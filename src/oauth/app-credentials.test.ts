import { createPublicKey, generateKeyPairSync, verify } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { parseClientCertificate, parseServiceAccountKey, serviceAccountAssertion } from './app-credentials.js';

const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
const pem = privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
const keyFile = (extra: Record<string, unknown> = {}) =>
  JSON.stringify({
    type: 'service_account',
    client_email: 'mailer@project.iam.gserviceaccount.com',
    client_id: '1234',
    private_key_id: 'kid1',
    private_key: pem,
    token_uri: 'https://oauth2.googleapis.com/token',
    ...extra,
  });

describe('service-account keys', () => {
  it('reads the fields mailgate uses', () => {
    const parsed = parseServiceAccountKey(keyFile(), { allowInsecure: false });
    expect(parsed).toMatchObject({
      value: { clientEmail: 'mailer@project.iam.gserviceaccount.com', clientId: '1234', privateKeyId: 'kid1' },
    });
  });

  it('names what is wrong with a key file', () => {
    const message = (json: string) => {
      const parsed = parseServiceAccountKey(json, { allowInsecure: false });
      return 'error' in parsed ? parsed.error : null;
    };
    expect(message('[]')?.message).toMatch(/not JSON/);
    expect(message(keyFile({ client_email: undefined }))).toEqual({
      field: 'serviceAccountKey',
      message: 'the key file has no client_email',
    });
    expect(message(keyFile({ private_key: 'garbage' }))?.message).toMatch(/not an RSA key/);
    expect(message(keyFile({ token_uri: 'http://127.0.0.1/token' }))?.message).toMatch(/must be https/);
    expect(message(keyFile({ type: 'authorized_user' }))?.message).toMatch(/"authorized_user"/);
  });

  it('signs an RFC 7523 assertion for the token endpoint, acting as the mailbox', () => {
    const parsed = parseServiceAccountKey(keyFile(), { allowInsecure: false });
    if (!('value' in parsed)) throw new Error('unexpected');
    const jwt = serviceAccountAssertion(parsed.value, {
      scope: 'https://mail.google.com/',
      subject: 'a@b.test',
      nowSec: 1000,
    });
    const [h, p, s] = jwt.split('.') as [string, string, string];
    expect(JSON.parse(Buffer.from(h, 'base64url').toString())).toEqual({ kid: 'kid1', alg: 'RS256', typ: 'JWT' });
    expect(JSON.parse(Buffer.from(p, 'base64url').toString())).toMatchObject({
      iss: 'mailer@project.iam.gserviceaccount.com',
      sub: 'a@b.test',
      aud: 'https://oauth2.googleapis.com/token',
      scope: 'https://mail.google.com/',
      iat: 1000,
      exp: 4600,
    });
    expect(verify('sha256', Buffer.from(`${h}.${p}`), createPublicKey(privateKey), Buffer.from(s, 'base64url'))).toBe(
      true,
    );
  });
});

describe('client certificates', () => {
  it('refuses a PEM without a certificate, or with only an encrypted key', () => {
    expect(parseClientCertificate(pem)).toMatchObject({ error: { field: 'clientCertificate' } });
    const encrypted = privateKey.export({ type: 'pkcs8', format: 'pem', cipher: 'aes-256-cbc', passphrase: 'x' });
    const onlyCert = '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n';
    expect(parseClientCertificate(`${onlyCert}${encrypted.toString()}`)).toMatchObject({
      error: { message: expect.stringMatching(/encrypted/) },
    });
  });
});
