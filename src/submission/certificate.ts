import { X509Certificate } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { generate } from 'selfsigned';
import type { Keyring } from '../crypto/keyring.js';
import type { Logger } from '../log.js';
import { VersionConflictError, type Documents } from '../store/store.js';

/**
 * The certificate the submission front presents (STARTTLS or implicit TLS): the operator's files when
 * MAILGATE_SUBMISSION_TLS_CERT_FILE and _KEY_FILE are set, otherwise a self-signed one generated once and kept in
 * the store with its private key sealed, so every instance on Redis presents the same certificate and an app that
 * pinned it keeps working after a restart. The first instance to write it wins (compare-and-set); the others
 * read it back.
 */

export const SUBMISSION_TLS = 'submission_tls';
const CERT_ID = 'generated';
const VALID_DAYS = 3650;

interface StoredCertificate {
  host: string;
  cert: string;
  /** Sealed (SEALED_FIELDS: submission_tls#key). */
  key: string;
  createdAt: string;
}

export interface SubmissionCertificate {
  key: string;
  cert: string;
  source: 'files' | 'generated';
  fingerprint: string;
}

function fingerprintOf(cert: string): string {
  return new X509Certificate(cert).fingerprint256;
}

export async function submissionCertificate(deps: {
  certFile: string | undefined;
  keyFile: string | undefined;
  host: string;
  store: Documents;
  keyring: Keyring;
  log: Logger;
}): Promise<SubmissionCertificate> {
  if (deps.certFile && deps.keyFile) {
    const [cert, key] = await Promise.all([readFile(deps.certFile, 'utf8'), readFile(deps.keyFile, 'utf8')]);
    return { cert, key, source: 'files', fingerprint: fingerprintOf(cert) };
  }
  const ctx = { collection: SUBMISSION_TLS, id: CERT_ID, field: 'key' };
  const existing = await deps.store.get<StoredCertificate>(SUBMISSION_TLS, CERT_ID);
  if (existing) {
    const cert = existing.value.cert;
    return {
      cert,
      key: deps.keyring.open(existing.value.key, ctx),
      source: 'generated',
      fingerprint: fingerprintOf(cert),
    };
  }
  const notAfterDate = new Date(Date.now() + VALID_DAYS * 86_400_000);
  const made = await generate([{ name: 'commonName', value: deps.host }], { notAfterDate, keySize: 2048 });
  try {
    await deps.store.put<StoredCertificate>(
      SUBMISSION_TLS,
      CERT_ID,
      {
        host: deps.host,
        cert: made.cert,
        key: deps.keyring.seal(made.private, ctx),
        createdAt: new Date().toISOString(),
      },
      { ifVersion: 0 },
    );
  } catch (err) {
    if (!(err instanceof VersionConflictError)) throw err;
    return submissionCertificate(deps);
  }
  const fingerprint = fingerprintOf(made.cert);
  deps.log.warn(
    { fingerprint, host: deps.host },
    'generated a self-signed certificate for the SMTP submission front (kept sealed in the store, the same on every ' +
      'instance); apps must accept it or pin its fingerprint. Set MAILGATE_SUBMISSION_TLS_CERT_FILE and ' +
      'MAILGATE_SUBMISSION_TLS_KEY_FILE for a trusted one.',
  );
  return { cert: made.cert, key: made.private, source: 'generated', fingerprint };
}
