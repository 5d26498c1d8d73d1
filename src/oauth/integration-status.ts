import { attentionMove } from './integration-index.js';
import type { Keyring } from '../crypto/keyring.js';
import type { Logger } from '../log.js';
import { VersionConflictError, type Doc, type Store } from '../store/store.js';
import { credentialExpiry, sealCredentials, type CredentialInput } from './integration-credentials.js';
import { INTEGRATIONS, type IntegrationRecord } from './integration-types.js';
import type { OAuthDiagnosis } from './providers/index.js';

/** Writes to an integration that follow the provider's answers: a proven credential, a misconfiguration flag. */

export interface IntegrationStatusDeps {
  store: Store;
  keyring: Keyring;
  log: Logger;
  allowInsecure: boolean;
}

/** Replaces the credential after it was proven; retried on a concurrent change so the proof is never lost. */
export async function storeProvenCredential(
  deps: IntegrationStatusDeps,
  id: string,
  credentials: CredentialInput,
  secretExpiresAt: string | null | undefined,
): Promise<Doc<IntegrationRecord>> {
  for (;;) {
    const current = await deps.store.get<IntegrationRecord>(INTEGRATIONS, id);
    if (!current) throw new Error(`no OAuth integration ${id}`);
    const now = Date.now();
    const { changed: _c, ...sealed } = sealCredentials(deps.keyring, INTEGRATIONS, id, credentials, current.value, {
      allowInsecure: deps.allowInsecure,
    });
    const record: IntegrationRecord = {
      ...current.value,
      ...sealed,
      secretExpiresAt: secretExpiresAt ?? credentialExpiry(credentials),
      secretChangedAt: now,
      updatedAt: now,
      misconfigured: null,
    };
    try {
      return await deps.store.put(INTEGRATIONS, id, record, {
        ifVersion: current.version,
        schedule: attentionMove(record),
      });
    } catch (err) {
      if (!(err instanceof VersionConflictError)) throw err;
    }
  }
}

export async function markMisconfigured(
  deps: IntegrationStatusDeps,
  id: string,
  diagnosis: OAuthDiagnosis,
): Promise<void> {
  const current = await deps.store.get<IntegrationRecord>(INTEGRATIONS, id);
  if (!current || current.value.misconfigured?.code === diagnosis.code) return;
  try {
    const record = { ...current.value, misconfigured: { at: Date.now(), ...diagnosis } };
    await deps.store.put(INTEGRATIONS, id, record, { ifVersion: current.version, schedule: attentionMove(record) });
    deps.log.error(
      { integrationId: id, code: diagnosis.code },
      'OAuth integration misconfigured: the provider rejected the client credentials',
    );
  } catch {
    // Another instance recorded it first.
  }
}

export async function clearMisconfigured(deps: IntegrationStatusDeps, id: string): Promise<void> {
  const current = await deps.store.get<IntegrationRecord>(INTEGRATIONS, id);
  if (!current?.value.misconfigured) return;
  try {
    const record = { ...current.value, misconfigured: null };
    await deps.store.put(INTEGRATIONS, id, record, { ifVersion: current.version, schedule: attentionMove(record) });
  } catch {
    // Changed meanwhile; the next success clears it.
  }
}
