import { execFile } from 'node:child_process';
import { createPublicKey, generateKeyPairSync, randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { SMTPServer, type SMTPServerAuthentication } from 'smtp-server';
import type { FakeProvider } from './oidc-provider.js';

/**
 * App-only credentials for tests, made the way an admin makes them: a self-signed certificate with its key
 * (openssl, as in Microsoft's documentation) and a Google service-account key file; and an SMTP server that
 * takes XOAUTH2 only when introspection at the provider says the token is active, carries the expected scope
 * and belongs to the expected application or mailbox.
 */

const run = promisify(execFile);

export interface TestClientCertificate {
  /** Certificate + private key, one PEM (what the admin pastes). */
  pem: string;
  /** The public key as a JWK, registered at the fake provider for private_key_jwt. */
  jwk: object;
}

export async function makeClientCertificate(cn = 'mailgate app-only'): Promise<TestClientCertificate> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'mailgate-appcert-'));
  try {
    const key = path.join(dir, 'key.pem');
    const cert = path.join(dir, 'cert.pem');
    await run('openssl', [
      'req',
      '-x509',
      '-newkey',
      'rsa:2048',
      '-nodes',
      '-days',
      '365',
      '-subj',
      `/CN=${cn}`,
      '-keyout',
      key,
      '-out',
      cert,
    ]);
    const keyPem = await readFile(key, 'utf8');
    return {
      pem: `${await readFile(cert, 'utf8')}${keyPem}`,
      jwk: createPublicKey(keyPem).export({ format: 'jwk' }),
    };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

export interface TestServiceAccount {
  clientEmail: string;
  clientId: string;
  /** The key file's JSON (what the admin pastes). */
  json: string;
  privateKeyPem: string;
  publicKeyPem: string;
}

export function makeServiceAccountKey(provider: FakeProvider, clientEmail?: string): TestServiceAccount {
  const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const privateKeyPem = privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
  const email = clientEmail ?? `mailer-${randomBytes(3).toString('hex')}@project.iam.gserviceaccount.test`;
  const clientId = String(100000000000000 + Math.floor(Math.random() * 1e12));
  return {
    clientEmail: email,
    clientId,
    privateKeyPem,
    publicKeyPem: publicKey.export({ type: 'spki', format: 'pem' }).toString(),
    json: JSON.stringify({
      type: 'service_account',
      project_id: 'project',
      private_key_id: randomBytes(20).toString('hex'),
      private_key: privateKeyPem,
      client_email: email,
      client_id: clientId,
      auth_uri: `${provider.issuer}/auth`,
      token_uri: `${provider.issuer}/token`,
    }),
  };
}

export interface AppOnlySmtp {
  port: number;
  messages: { from: string; to: string[]; raw: string; user: string }[];
  authAttempts: {
    user: string;
    accepted: boolean;
    clientId?: string | undefined;
    sub?: string | undefined;
    scope?: string | undefined;
  }[];
  dropConnections(): void;
  close(): Promise<void>;
}

/**
 * Exchange Online / Gmail as seen by app-only senders: XOAUTH2 whose token is introspected. `accept` decides
 * from the introspection answer and the XOAUTH2 user (Microsoft: the app's client id; Google: sub = user).
 */
export async function startAppOnlySmtp(
  provider: FakeProvider,
  options: {
    scope: string;
    accept(info: { sub?: string | undefined; client_id?: string | undefined }, user: string): boolean;
  },
): Promise<AppOnlySmtp> {
  const messages: AppOnlySmtp['messages'] = [];
  const authAttempts: AppOnlySmtp['authAttempts'] = [];
  const server = new SMTPServer({
    logger: false,
    disableReverseLookup: true,
    authMethods: ['XOAUTH2'],
    allowInsecureAuth: true,
    disabledCommands: ['STARTTLS'],
    onAuth(auth: SMTPServerAuthentication, _session, cb) {
      const user = auth.username ?? '';
      provider
        .introspect(auth.accessToken ?? '')
        .then((info) => {
          const ok = info.active && (info.scope ?? '').split(' ').includes(options.scope) && options.accept(info, user);
          authAttempts.push({ user, accepted: ok, clientId: info.client_id, sub: info.sub, scope: info.scope });
          if (ok) cb(null, { user });
          else cb(null, { data: { status: '401', schemes: 'bearer', scope: options.scope } });
        })
        .catch((err: unknown) => cb(err as Error));
    },
    onData(stream, session, cb) {
      const chunks: Buffer[] = [];
      stream.on('data', (c: Buffer) => chunks.push(c));
      stream.on('end', () => {
        messages.push({
          from: session.envelope.mailFrom ? session.envelope.mailFrom.address : '',
          to: session.envelope.rcptTo.map((r) => r.address),
          raw: Buffer.concat(chunks).toString('utf8'),
          user: String(session.user ?? ''),
        });
        cb();
      });
    },
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.server.address() as AddressInfo).port,
    messages,
    authAttempts,
    dropConnections() {
      for (const connection of (server as unknown as { connections: Set<{ close(): void }> }).connections)
        connection.close();
    },
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
