import { randomBytes } from 'node:crypto';
import type { AuditRecorder, Actor } from '../admin/types.js';
import type { Config } from '../config.js';
import type { Keyring } from '../crypto/keyring.js';
import { AppError, type ErrorDetail } from '../errors.js';
import type { Logger } from '../log.js';
import type { Doc, Store } from '../store/store.js';
import { OAuthClient, type ClientOptions } from './client.js';
import { attentionMove } from './integration-index.js';
import {
  checkCredentials,
  clientAuthOf,
  credentialExpiry,
  grantTypeOf,
  openCredentials,
  sealCredentials,
  type CredentialInput,
} from './integration-credentials.js';
import {
  INTEGRATIONS,
  type IntegrationInput,
  type IntegrationRecord,
  type IntegrationView,
} from './integration-types.js';
import { clearMisconfigured, markMisconfigured, storeProvenCredential } from './integration-status.js';
import {
  defaultScopes,
  issuerFor,
  providerFields,
  providerOf,
  validateProviderSettings,
  type OAuthDiagnosis,
  type ProviderFields,
} from './providers/index.js';

/**
 * OAuth 2.0 integrations: one registered app at a provider (oauth/providers/). The credentials (client secret,
 * certificate, service-account key: see integration-credentials.ts) are write-only (sealed at rest, never
 * returned); everything else is plain configuration.
 */

export { INTEGRATIONS } from './integration-types.js';
export type { IntegrationInput, IntegrationRecord, IntegrationView } from './integration-types.js';

export interface IntegrationServiceDeps {
  config: Config;
  store: Store;
  keyring: Keyring;
  log: Logger;
  audit: AuditRecorder;
  /** Test hook: replaces fetch for every provider request. */
  fetch?: typeof fetch | undefined;
  /** The egress-checked fetch used for custom integrations, whose endpoints an admin typed in. */
  egressFetch?: typeof fetch | undefined;
  /** Seconds a provider request may take. */
  requestTimeoutSec?: number | undefined;
  /** How many authorized mailboxes hold tokens of this integration (the grants live in tokens/). */
  grantsOf: (integrationId: string) => Promise<number>;
  /** Called after an integration is created, changed or deleted on this instance (e.g. to drop a cached readiness answer). */
  onChange?: (integrationId: string) => void;
}

export function redirectUriOf(config: Pick<Config, 'MAILGATE_BASE_URL'>): string {
  return `${config.MAILGATE_BASE_URL}/oauth/callback`;
}

export class IntegrationService {
  readonly #clients = new Map<string, { version: number; client: Promise<OAuthClient> }>();
  readonly requestTimeoutSec: number;

  constructor(private readonly deps: IntegrationServiceDeps) {
    this.requestTimeoutSec = deps.requestTimeoutSec ?? 10;
  }

  get redirectUri(): string {
    return redirectUriOf(this.deps.config);
  }

  get clientOptions(): ClientOptions {
    return {
      allowInsecure: this.deps.config.MAILGATE_ALLOW_INSECURE_OAUTH,
      timeoutSec: this.requestTimeoutSec,
      fetch: this.deps.fetch,
    };
  }

  view(doc: Doc<IntegrationRecord>): IntegrationView {
    const { clientSecret, clientCertificate, serviceAccountKey, ...rest } = doc.value;
    return {
      id: doc.id,
      ...rest,
      grantType: grantTypeOf(rest),
      certificate: rest.certificate ?? null,
      serviceAccount: rest.serviceAccount ?? null,
      authority: rest.authority ?? null,
      graphBaseUrl: rest.graphBaseUrl ?? null,
      hasClientSecret: Boolean(clientSecret),
      hasClientCertificate: Boolean(clientCertificate),
      hasServiceAccountKey: Boolean(serviceAccountKey),
      redirectUri: this.redirectUri,
      resolvedIssuer: issuerFor(this.deps.config, rest) ?? null,
    };
  }

  async list(): Promise<Doc<IntegrationRecord>[]> {
    return this.deps.store.list<IntegrationRecord>(INTEGRATIONS);
  }

  /** A page in id order (`after` the last id of the previous page). */
  page(options: { limit: number; after?: string | undefined }): Promise<Doc<IntegrationRecord>[]> {
    return this.deps.store.list<IntegrationRecord>(INTEGRATIONS, { limit: options.limit, after: options.after });
  }

  /** The integration, or null when there is none with this id. */
  async find(id: string): Promise<Doc<IntegrationRecord> | null> {
    return this.deps.store.get<IntegrationRecord>(INTEGRATIONS, id);
  }

  async get(id: string): Promise<Doc<IntegrationRecord>> {
    const doc = await this.deps.store.get<IntegrationRecord>(INTEGRATIONS, id);
    if (!doc) throw new AppError('not_found', { message: `No OAuth integration ${id}.` });
    return doc;
  }

  /** The stored credential, opened (never leaves the OAuth and token areas). */
  openCredentials(doc: Doc<IntegrationRecord>): CredentialInput {
    return openCredentials(this.deps.keyring, INTEGRATIONS, doc.id, {
      clientSecret: doc.value.clientSecret,
      clientCertificate: doc.value.clientCertificate ?? null,
      serviceAccountKey: doc.value.serviceAccountKey ?? null,
    });
  }

  /** The client secret, for integrations that have one. */
  openSecret(doc: Doc<IntegrationRecord>): string {
    const secret = this.openCredentials(doc).clientSecret;
    if (!secret) throw new AppError('conflict', { message: `Integration ${doc.id} has no client secret.` });
    return secret;
  }

  private get allowInsecure(): boolean {
    return this.deps.config.MAILGATE_ALLOW_INSECURE_OAUTH;
  }

  /** Domain rules the schema cannot express; throws validation_failed naming each field. */
  private check(input: IntegrationInput, creating: boolean): void {
    const grantType = input.grantType ?? 'authorization_code';
    const details: ErrorDetail[] = checkCredentials(input.provider, grantType, input, {
      creating,
      allowInsecure: this.allowInsecure,
    });
    if (!input.clientId && grantType !== 'service_account') details.push({ field: 'clientId', message: 'required' });
    details.push(...validateProviderSettings(input.provider, input, { allowInsecure: this.allowInsecure }));
    if (details.length > 0) {
      throw new AppError('validation_failed', {
        message: details.map((d) => `${d.field}: ${d.message}`).join('; '),
        details,
      });
    }
  }

  private preset(input: IntegrationInput): ProviderFields & Pick<IntegrationRecord, 'scopes'> {
    return {
      ...providerFields(input.provider, input),
      scopes: input.scopes && input.scopes.length > 0 ? [...new Set(input.scopes)] : defaultScopes(input.provider),
    };
  }

  async create(input: IntegrationInput, actor: Actor, ip?: string): Promise<Doc<IntegrationRecord>> {
    this.check(input, true);
    const id = `oi_${randomBytes(9).toString('base64url')}`;
    const now = Date.now();
    const none = { clientSecret: null, clientCertificate: null, serviceAccountKey: null, certificate: null };
    const { changed: _c, ...credentials } = sealCredentials(
      this.deps.keyring,
      INTEGRATIONS,
      id,
      input,
      { ...none, serviceAccount: null },
      { allowInsecure: this.allowInsecure },
    );
    const record: IntegrationRecord = {
      name: input.name,
      provider: input.provider,
      clientId: input.clientId || credentials.serviceAccount?.clientId || credentials.serviceAccount?.clientEmail || '',
      grantType: input.grantType ?? 'authorization_code',
      ...credentials,
      ...this.preset(input),
      secretExpiresAt: input.secretExpiresAt ?? credentialExpiry(input),
      misconfigured: null,
      createdAt: now,
      updatedAt: now,
      secretChangedAt: now,
    };
    const doc = await this.deps.store.put(INTEGRATIONS, id, record, { ifVersion: 0, schedule: attentionMove(record) });
    await this.deps.audit.record({
      actor,
      action: 'oauth_integration.create',
      target: `oauth_integration:${id}`,
      outcome: 'success',
      ip,
      detail: { provider: input.provider, name: input.name, grantType: record.grantType },
    });
    this.deps.onChange?.(doc.id);
    return doc;
  }

  /** Provider is fixed after creation; the secret changes only when a new one is given. */
  async update(
    id: string,
    input: IntegrationInput,
    actor: Actor,
    ip?: string,
    ifVersion?: number,
  ): Promise<Doc<IntegrationRecord>> {
    const current = await this.get(id);
    for (const field of ['provider', 'grantType'] as const) {
      const before = field === 'provider' ? current.value.provider : grantTypeOf(current.value);
      const after = field === 'provider' ? input.provider : (input.grantType ?? before);
      if (after === before) continue;
      throw new AppError('validation_failed', {
        details: [{ field, message: `the ${field} cannot change; create another integration` }],
        message: `${field}: cannot change`,
      });
    }
    input = { ...input, grantType: grantTypeOf(current.value) };
    this.check(input, false);
    const now = Date.now();
    const record: IntegrationRecord = {
      ...current.value,
      name: input.name,
      clientId: input.clientId || current.value.clientId,
      ...this.preset(input),
      secretExpiresAt: input.secretExpiresAt === undefined ? current.value.secretExpiresAt : input.secretExpiresAt,
      updatedAt: now,
    };
    const changed = Object.keys(record).filter(
      (k) =>
        k !== 'updatedAt' &&
        JSON.stringify(record[k as keyof IntegrationRecord]) !==
          JSON.stringify(current.value[k as keyof IntegrationRecord]),
    );
    // Refreshes send the stored client secret and refresh tokens to the token endpoint: it moves only with no mailbox authorized.
    const moved = (
      ['issuer', 'authorizationEndpoint', 'tokenEndpoint', 'revocationEndpoint', 'authority'] as const
    ).find((f) => changed.includes(f));
    if (moved && (await this.deps.grantsOf(id)) > 0) {
      const message =
        'this integration holds authorized mailboxes: press Disconnect on those SMTP servers before changing its endpoints, then Authorize again';
      throw new AppError('validation_failed', {
        message: `${moved}: ${message}`,
        details: [{ field: moved, message }],
      });
    }
    const sealed = sealCredentials(this.deps.keyring, INTEGRATIONS, id, input, record, {
      allowInsecure: this.allowInsecure,
    });
    if (moved && !sealed.changed) {
      // The stored credential was given for the old endpoints; it goes to a new one only when typed again for it.
      const field = record.grantType === 'service_account' ? 'serviceAccountKey' : 'clientSecret';
      const message = `the ${moved} changed: enter the credential again, so it is only ever sent where it was given for`;
      throw new AppError('validation_failed', { message: `${field}: ${message}`, details: [{ field, message }] });
    }
    if (sealed.changed) {
      const { changed: field, ...credentials } = sealed;
      Object.assign(record, credentials);
      if (field === 'clientCertificate' && input.secretExpiresAt == null)
        record.secretExpiresAt = credentialExpiry(input);
      record.secretChangedAt = now;
      record.misconfigured = null;
      changed.push(field);
    }
    const doc = await this.deps.store.put(INTEGRATIONS, id, record, {
      ifVersion: ifVersion ?? current.version,
      schedule: attentionMove(record),
    });
    this.#clients.delete(id);
    await this.deps.audit.record({
      actor,
      action: 'oauth_integration.update',
      target: `oauth_integration:${id}`,
      outcome: 'success',
      ip,
      detail: { changed },
    });
    this.deps.onChange?.(doc.id);
    return doc;
  }

  async delete(id: string, actor: Actor, ip?: string): Promise<void> {
    await this.get(id);
    const inUse = await this.deps.grantsOf(id);
    if (inUse > 0) {
      throw new AppError('conflict', {
        message: `This integration still holds ${inUse} authorized mailbox(es): press Disconnect on those SMTP servers first.`,
      });
    }
    await this.deps.store.delete(INTEGRATIONS, id, { schedule: attentionMove(null) });
    this.deps.onChange?.(id);
    this.#clients.delete(id);
    await this.deps.audit.record({
      actor,
      action: 'oauth_integration.delete',
      target: `oauth_integration:${id}`,
      outcome: 'success',
      ip,
    });
  }

  /** A ready client for the integration as stored now (discovery cached per stored version). */
  async client(id: string): Promise<OAuthClient> {
    const doc = await this.get(id);
    const cached = this.#clients.get(id);
    if (cached && cached.version === doc.version) return cached.client;
    const client = this.clientFor(doc, this.openCredentials(doc));
    this.#clients.set(id, { version: doc.version, client });
    client.catch(() => {
      if (this.#clients.get(id)?.client === client) this.#clients.delete(id);
    });
    return client;
  }

  /** A client with given credentials (used to prove a new credential before storing it). */
  async clientFor(doc: Doc<IntegrationRecord>, credentials: CredentialInput): Promise<OAuthClient> {
    const v = doc.value;
    const auth = clientAuthOf(credentials, { allowInsecure: this.allowInsecure });
    // Presets talk to issuers the operator configured; URLs an admin typed in (a custom integration's
    // endpoints, a sovereign authority, a service-account key's token_uri) pass the egress policy.
    const adminEntered =
      providerOf(v.provider).adminEnteredEndpoints ||
      Boolean(v.authority) ||
      auth.credential?.kind === 'service_account';
    return OAuthClient.connect(
      {
        issuer: issuerFor(this.deps.config, v),
        authorizationEndpoint: v.authorizationEndpoint ?? undefined,
        tokenEndpoint: v.tokenEndpoint ?? undefined,
        revocationEndpoint: v.revocationEndpoint ?? undefined,
        clientId: v.clientId,
        ...auth,
      },
      adminEntered ? { ...this.clientOptions, fetch: this.deps.fetch ?? this.deps.egressFetch } : this.clientOptions,
    );
  }

  /** Checks a replacement credential for this integration (rotation), naming the field. */
  checkReplacement(doc: Doc<IntegrationRecord>, credentials: CredentialInput): ErrorDetail[] {
    const given = Object.values(credentials).filter(Boolean).length;
    return checkCredentials(doc.value.provider, grantTypeOf(doc.value), credentials, {
      creating: given === 0,
      allowInsecure: this.allowInsecure,
    });
  }

  /** Replaces the credential after it was proven (see tokens/secret-rotation.ts). */
  async storeProvenSecret(
    id: string,
    credentials: CredentialInput,
    secretExpiresAt: string | null | undefined,
  ): Promise<Doc<IntegrationRecord>> {
    const doc = await storeProvenCredential(this.statusDeps, id, credentials, secretExpiresAt);
    this.#clients.delete(id);
    return doc;
  }

  markMisconfigured(id: string, diagnosis: OAuthDiagnosis): Promise<void> {
    return markMisconfigured(this.statusDeps, id, diagnosis);
  }

  clearMisconfigured(id: string): Promise<void> {
    return clearMisconfigured(this.statusDeps, id);
  }

  private get statusDeps() {
    return {
      store: this.deps.store,
      keyring: this.deps.keyring,
      log: this.deps.log,
      allowInsecure: this.allowInsecure,
    };
  }
}
