import { randomBytes } from 'node:crypto';
import type { AuditRecorder, Actor } from '../admin/types.js';
import type { Config } from '../config.js';
import type { Keyring } from '../crypto/keyring.js';
import { AppError, type ErrorDetail } from '../errors.js';
import type { Logger } from '../log.js';
import { VersionConflictError, type Doc, type Store } from '../store/store.js';
import { OAuthClient, type ClientOptions } from './client.js';
import { attentionMove } from './integration-index.js';
import {
  defaultScopes,
  issuerFor,
  providerFields,
  providerOf,
  validateProviderSettings,
  type OAuthDiagnosis,
  type OAuthProviderKind,
  type ProviderFields,
} from './providers/index.js';

/**
 * OAuth 2.0 integrations: one registered app at a provider (oauth/providers/). The client secret
 * is write-only (sealed at rest, never returned); everything else is plain configuration.
 */

export const INTEGRATIONS = 'oauth_integrations';

export interface IntegrationRecord {
  name: string;
  provider: OAuthProviderKind;
  clientId: string;
  /** Sealed with {collection: 'oauth_integrations', id, field: 'clientSecret'}. */
  clientSecret: string;
  tenant: string | null;
  scopes: string[];
  issuer: string | null;
  authorizationEndpoint: string | null;
  tokenEndpoint: string | null;
  revocationEndpoint: string | null;
  /** ISO date (YYYY-MM-DD) after which the client secret stops working, when known. */
  secretExpiresAt: string | null;
  /** Google app whose consent screen is in "Testing": refresh tokens die after 7 days. */
  googleInTesting: boolean;
  /** Set when the provider answered invalid_client; cleared by a successful token request or a secret change. */
  misconfigured: { at: number; code: string; hint: string } | null;
  createdAt: number;
  updatedAt: number;
  secretChangedAt: number;
}

/** What the API and pages show: never the secret. */
export interface IntegrationView extends Omit<IntegrationRecord, 'clientSecret'> {
  id: string;
  hasClientSecret: true;
  redirectUri: string;
  /** The issuer mailgate discovers (presets resolved), or null with explicit endpoints. */
  resolvedIssuer: string | null;
}

export interface IntegrationInput {
  name: string;
  provider: OAuthProviderKind;
  clientId: string;
  clientSecret?: string | undefined;
  tenant?: string | undefined;
  scopes?: string[] | undefined;
  issuer?: string | undefined;
  authorizationEndpoint?: string | undefined;
  tokenEndpoint?: string | undefined;
  revocationEndpoint?: string | undefined;
  secretExpiresAt?: string | null | undefined;
  googleInTesting?: boolean | undefined;
}

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
}

const SECRET_FIELD = 'clientSecret';

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
    const { clientSecret: _secret, ...rest } = doc.value;
    return {
      id: doc.id,
      ...rest,
      hasClientSecret: true,
      redirectUri: this.redirectUri,
      resolvedIssuer: issuerFor(this.deps.config, rest) ?? null,
    };
  }

  async list(): Promise<Doc<IntegrationRecord>[]> {
    return this.deps.store.list<IntegrationRecord>(INTEGRATIONS);
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

  openSecret(doc: Doc<IntegrationRecord>): string {
    return this.deps.keyring.open(doc.value.clientSecret, {
      collection: INTEGRATIONS,
      id: doc.id,
      field: SECRET_FIELD,
    });
  }

  /** Domain rules the schema cannot express; throws validation_failed naming each field. */
  private check(input: IntegrationInput, creating: boolean): void {
    const details: ErrorDetail[] = [];
    if (creating && !input.clientSecret) details.push({ field: 'clientSecret', message: 'required' });
    details.push(
      ...validateProviderSettings(input.provider, input, {
        allowInsecure: this.deps.config.MAILGATE_ALLOW_INSECURE_OAUTH,
      }),
    );
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
    const record: IntegrationRecord = {
      name: input.name,
      provider: input.provider,
      clientId: input.clientId,
      clientSecret: this.deps.keyring.seal(input.clientSecret!, { collection: INTEGRATIONS, id, field: SECRET_FIELD }),
      ...this.preset(input),
      secretExpiresAt: input.secretExpiresAt ?? null,
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
      detail: { provider: input.provider, name: input.name },
    });
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
    if (input.provider !== current.value.provider) {
      throw new AppError('validation_failed', {
        details: [{ field: 'provider', message: 'the provider cannot change; create another integration' }],
        message: 'provider: cannot change',
      });
    }
    this.check(input, false);
    const now = Date.now();
    const record: IntegrationRecord = {
      ...current.value,
      name: input.name,
      clientId: input.clientId,
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
    const moved = (['issuer', 'authorizationEndpoint', 'tokenEndpoint', 'revocationEndpoint'] as const).find((f) =>
      changed.includes(f),
    );
    if (moved && (await this.deps.grantsOf(id)) > 0) {
      const message =
        'this integration holds authorized mailboxes: press Disconnect on those SMTP servers before changing its endpoints, then Authorize again';
      throw new AppError('validation_failed', {
        message: `${moved}: ${message}`,
        details: [{ field: moved, message }],
      });
    }
    if (moved && !input.clientSecret) {
      // The stored secret was given for the old endpoints; it goes to a new one only when typed again for it.
      const message = `the ${moved} changed: enter the client secret again, so it is only ever sent where it was given for`;
      throw new AppError('validation_failed', {
        message: `clientSecret: ${message}`,
        details: [{ field: 'clientSecret', message }],
      });
    }
    if (input.clientSecret) {
      record.clientSecret = this.deps.keyring.seal(input.clientSecret, {
        collection: INTEGRATIONS,
        id,
        field: SECRET_FIELD,
      });
      record.secretChangedAt = now;
      record.misconfigured = null;
      changed.push('clientSecret');
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
    const client = this.clientFor(doc, this.openSecret(doc));
    this.#clients.set(id, { version: doc.version, client });
    client.catch(() => {
      if (this.#clients.get(id)?.client === client) this.#clients.delete(id);
    });
    return client;
  }

  /** A client with a given secret (used to prove a new secret before storing it). */
  clientFor(doc: Doc<IntegrationRecord>, clientSecret: string): Promise<OAuthClient> {
    const v = doc.value;
    return OAuthClient.connect(
      {
        issuer: issuerFor(this.deps.config, v),
        authorizationEndpoint: v.authorizationEndpoint ?? undefined,
        tokenEndpoint: v.tokenEndpoint ?? undefined,
        revocationEndpoint: v.revocationEndpoint ?? undefined,
        clientId: v.clientId,
        clientSecret,
      },
      // Presets talk to issuers the operator configured; a custom integration's URLs pass the egress policy.
      providerOf(v.provider).adminEnteredEndpoints
        ? { ...this.clientOptions, fetch: this.deps.fetch ?? this.deps.egressFetch }
        : this.clientOptions,
    );
  }

  /** Replaces the secret after it was proven (see tokens/secret-rotation.ts). */
  async storeProvenSecret(
    id: string,
    clientSecret: string,
    secretExpiresAt: string | null | undefined,
  ): Promise<Doc<IntegrationRecord>> {
    for (;;) {
      const current = await this.get(id);
      const now = Date.now();
      const record: IntegrationRecord = {
        ...current.value,
        clientSecret: this.deps.keyring.seal(clientSecret, { collection: INTEGRATIONS, id, field: SECRET_FIELD }),
        secretExpiresAt: secretExpiresAt === undefined ? null : secretExpiresAt,
        secretChangedAt: now,
        updatedAt: now,
        misconfigured: null,
      };
      try {
        const doc = await this.deps.store.put(INTEGRATIONS, id, record, {
          ifVersion: current.version,
          schedule: attentionMove(record),
        });
        this.#clients.delete(id);
        return doc;
      } catch (err) {
        if (!(err instanceof VersionConflictError)) throw err;
      }
    }
  }

  async markMisconfigured(id: string, diagnosis: OAuthDiagnosis): Promise<void> {
    const current = await this.deps.store.get<IntegrationRecord>(INTEGRATIONS, id);
    if (!current || current.value.misconfigured?.code === diagnosis.code) return;
    try {
      const record = { ...current.value, misconfigured: { at: Date.now(), ...diagnosis } };
      await this.deps.store.put(INTEGRATIONS, id, record, {
        ifVersion: current.version,
        schedule: attentionMove(record),
      });
      this.deps.log.error(
        { integrationId: id, code: diagnosis.code },
        'OAuth integration misconfigured: the provider rejected the client credentials',
      );
    } catch {
      // Another instance recorded it first.
    }
  }

  async clearMisconfigured(id: string): Promise<void> {
    const current = await this.deps.store.get<IntegrationRecord>(INTEGRATIONS, id);
    if (!current?.value.misconfigured) return;
    try {
      const record = { ...current.value, misconfigured: null };
      await this.deps.store.put(INTEGRATIONS, id, record, {
        ifVersion: current.version,
        schedule: attentionMove(record),
      });
    } catch {
      // Changed meanwhile; the next success clears it.
    }
  }
}
