import { createHash, createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import type { Actor, AuditRecorder } from '../admin/types.js';
import type { Clock } from '../clock.js';
import type { Keyring } from '../crypto/keyring.js';
import { AppError } from '../errors.js';
import { VersionConflictError, type Store } from '../store/store.js';
import type { IntegrationService } from '../oauth/integrations.js';
import {
  LinkRefusal,
  type LinkRefusalReason,
  type ReconnectLinkRecord,
  type ReconnectLinkView,
} from './reconnect-model.js';
import { AuthorizationFailure, type AuthorizeService, type ServerLookup } from './authorize.js';
import type { TokenService } from './refresh.js';

/**
 * Reconnect links: a signed, single-use link `/connect/<token>` (7 days, revocable, audited) with which the
 * owner of a mailbox, who has no mailgate account, runs Authorize for one server. Only a hash of the token
 * is stored; the token carries an HMAC under the session secrets, so a tampered link is refused before any
 * lookup. The authorization the link's page starts is bound to the link and to a short-lived signed cookie
 * (nothing is kept in a session); the link is consumed only once the provider's answer passed every check.
 */

export { LinkRefusal, type LinkRefusalReason, type ReconnectLinkRecord, type ReconnectLinkView };

export const RECONNECT_LINKS = 'reconnect_links';
export const RECONNECT_TRANSACTIONS = 'reconnect_transactions';
export const LINK_TTL_MS = 7 * 24 * 3600_000;
export const RECONNECT_TRANSACTION_TTL_MS = 10 * 60_000;
/** Keeps these MACs apart from anything else the session secrets sign. */
const LINK_PURPOSE = 'mailgate reconnect link\0';
const BINDING_PURPOSE = 'mailgate reconnect binding\0';
/** Lock names that keep refusal audit entries to one per address per minute. */
const REFUSAL_AUDIT_LOCK = 'reconnect_link_refusal_audit';
const TOKEN = /^(rl_[a-z0-9]{20})\.([A-Za-z0-9_-]{43})\.([A-Za-z0-9_-]{43})$/;

interface ReconnectTransaction {
  linkId: string;
  serverId: string;
  integrationId: string;
  codeVerifier: string;
  nonce: string;
  bindingHash: string;
  expiresAt: number;
}

export interface ReconnectDeps {
  store: Store;
  keyring: Keyring;
  audit: AuditRecorder;
  clock: Clock;
  servers: ServerLookup;
  authorize: Pick<AuthorizeService, 'prepare' | 'finish'>;
  integrations: Pick<IntegrationService, 'find'>;
  tokens: Pick<TokenService, 'get'>;
  /** The session secrets: the first signs, all verify. */
  secrets: readonly string[];
}

const sha256 = (value: string) => createHash('sha256').update(value).digest('base64url');
const mac = (secret: string, purpose: string, value: string) =>
  createHmac('sha256', secret)
    .update(purpose + value)
    .digest('base64url');

function equalText(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

const linkActor = (linkId: string): Actor => ({ type: 'system', id: `reconnect_link:${linkId}` });

export class ReconnectLinks {
  constructor(private readonly deps: ReconnectDeps) {
    if (deps.secrets.length === 0) throw new Error('reconnect links need a session secret to sign with');
  }

  private sign(purpose: string, value: string): string {
    return mac(this.deps.secrets[0]!, purpose, value);
  }

  private verifies(purpose: string, value: string, given: string): boolean {
    return this.deps.secrets.some((s) => equalText(mac(s, purpose, value), given));
  }

  view(id: string, l: ReconnectLinkRecord, now = this.deps.clock.now()): ReconnectLinkView {
    return {
      id,
      serverId: l.serverId,
      createdAt: new Date(l.createdAt).toISOString(),
      expiresAt: new Date(l.expiresAt).toISOString(),
      createdBy: l.createdBy,
      status: l.status === 'active' && now > l.expiresAt ? 'expired' : l.status,
    };
  }

  /** Creates a link for an OAuth server; the token is returned once and never stored. */
  async create(serverId: string, actor: Actor, ip?: string): Promise<{ id: string; token: string; expiresAt: string }> {
    const server = await this.deps.servers.get(serverId);
    if (server.authMethod !== 'oauth2' || !server.oauthIntegrationId)
      throw new AppError('bad_request', {
        message: 'Reconnect links are for servers that use OAuth 2.0 with an integration.',
      });
    const id = `rl_${randomBytes(15).toString('hex').slice(0, 20)}`;
    const secret = randomBytes(32).toString('base64url');
    const token = `${id}.${secret}.${this.sign(LINK_PURPOSE, `${id}.${secret}`)}`;
    const now = this.deps.clock.now();
    const record: ReconnectLinkRecord = {
      serverId,
      tokenHash: sha256(token),
      createdAt: now,
      expiresAt: now + LINK_TTL_MS,
      createdBy: actor.type === 'user' ? actor.email : `${actor.type}:${actor.id}`,
      status: 'active',
      usedAt: null,
      usedMailbox: null,
      revokedAt: null,
    };
    await this.deps.store.put(RECONNECT_LINKS, id, record, { ifVersion: 0 });
    await this.audit(actor, 'reconnect_link.create', serverId, 'success', ip, { linkId: id });
    return { id, token, expiresAt: new Date(record.expiresAt).toISOString() };
  }

  async list(serverId: string): Promise<ReconnectLinkView[]> {
    const now = this.deps.clock.now();
    return (await this.deps.store.list<ReconnectLinkRecord>(RECONNECT_LINKS))
      .filter((d) => d.value.serverId === serverId)
      .map((d) => this.view(d.id, d.value, now))
      .sort((a, b) => (a.createdAt === b.createdAt ? (a.id < b.id ? 1 : -1) : a.createdAt < b.createdAt ? 1 : -1));
  }

  async revoke(serverId: string, linkId: string, actor: Actor, ip?: string): Promise<ReconnectLinkView> {
    for (let attempt = 0; ; attempt++) {
      const doc = await this.deps.store.get<ReconnectLinkRecord>(RECONNECT_LINKS, linkId);
      if (!doc || doc.value.serverId !== serverId)
        throw new AppError('not_found', { message: `No reconnect link ${linkId} for this server.` });
      if (doc.value.status !== 'active') return this.view(doc.id, doc.value);
      const value: ReconnectLinkRecord = { ...doc.value, status: 'revoked', revokedAt: this.deps.clock.now() };
      try {
        await this.deps.store.put(RECONNECT_LINKS, linkId, value, { ifVersion: doc.version });
      } catch (err) {
        if (err instanceof VersionConflictError && attempt < 3) continue;
        throw err;
      }
      await this.audit(actor, 'reconnect_link.revoke', serverId, 'success', ip, { linkId });
      return this.view(linkId, value);
    }
  }

  /** Checks a token as presented in a URL; refusals of a well-signed link are audited. */
  async open(token: string, ip?: string): Promise<{ linkId: string; record: ReconnectLinkRecord; version: number }> {
    const m = TOKEN.exec(token);
    if (!m || !this.verifies(LINK_PURPOSE, `${m[1]}.${m[2]}`, m[3]!)) {
      if (await this.firstRefusalThisMinute(ip))
        await this.audit({ type: 'system', id: 'anonymous' }, 'reconnect_link.use', undefined, 'failure', ip, {
          error: 'tampered',
        });
      throw new LinkRefusal('tampered', 'This link is not valid: it was changed or cut short.');
    }
    const linkId = m[1]!;
    const doc = await this.deps.store.get<ReconnectLinkRecord>(RECONNECT_LINKS, linkId);
    if (!doc || !equalText(doc.value.tokenHash, sha256(token))) {
      if (await this.firstRefusalThisMinute(ip))
        await this.audit(linkActor(linkId), 'reconnect_link.use', undefined, 'failure', ip, { error: 'unknown' });
      throw new LinkRefusal('unknown', 'This link is unknown (it may have been deleted).');
    }
    const l = doc.value;
    const reason: LinkRefusalReason | null =
      l.status === 'used'
        ? 'used'
        : l.status === 'revoked'
          ? 'revoked'
          : this.deps.clock.now() > l.expiresAt
            ? 'expired'
            : null;
    if (reason) {
      await this.audit(linkActor(linkId), 'reconnect_link.use', l.serverId, 'failure', ip, { error: reason });
      throw new LinkRefusal(reason, `This link was ${reason === 'used' ? 'already used' : reason}.`);
    }
    return { linkId, record: l, version: doc.version };
  }

  /**
   * Whether a tampered or unknown link hit from this address is the first of the current minute (injected
   * clock), across instances: anyone can send such hits by the thousand, and one audit entry per address per
   * minute says enough without letting them flood the audit log. The refusal page is shown every time.
   */
  private async firstRefusalThisMinute(ip: string | undefined): Promise<boolean> {
    const minute = Math.floor(this.deps.clock.now() / 60_000);
    const lock = await this.deps.store.acquireLock(`${REFUSAL_AUDIT_LOCK}:${minute}:${sha256(ip ?? '-')}`, 120_000);
    return lock !== null;
  }

  /** What the link's page shows: the server and the mailbox it asks for (the server's user name or current grant). */
  async describe(token: string, ip?: string) {
    const { linkId, record } = await this.open(token, ip);
    const server = await this.deps.servers.get(record.serverId);
    const integration = server.oauthIntegrationId ? await this.deps.integrations.find(server.oauthIntegrationId) : null;
    const grant = await this.deps.tokens.get(server.id);
    return {
      linkId,
      serverId: server.id,
      serverName: server.name,
      provider: integration?.value.provider ?? null,
      mailbox: server.username ?? grant?.value.mailbox ?? null,
      needsReauth: grant?.value.status === 'needs_reauth',
      expiresAt: new Date(record.expiresAt).toISOString(),
    };
  }

  /**
   * The Authorize button of the link's page: a transaction bound to the link and to `binding`, the random
   * value the caller puts in a signed cookie. Returns the provider URL and the cookie value.
   */
  async begin(token: string, ip?: string): Promise<{ url: URL; cookie: string }> {
    const { linkId, record } = await this.open(token, ip);
    const server = await this.deps.servers.get(record.serverId);
    if (server.authMethod !== 'oauth2' || !server.oauthIntegrationId)
      throw new LinkRefusal('not_oauth', 'This server no longer uses OAuth 2.0.');
    const prepared = await this.deps.authorize.prepare(server.id);
    const binding = randomBytes(24).toString('base64url');
    const id = sha256(prepared.secrets.state);
    const tx: ReconnectTransaction = {
      linkId,
      serverId: server.id,
      integrationId: prepared.integrationId,
      codeVerifier: this.deps.keyring.seal(prepared.secrets.codeVerifier, {
        collection: RECONNECT_TRANSACTIONS,
        id,
        field: 'codeVerifier',
      }),
      nonce: prepared.secrets.nonce,
      bindingHash: sha256(binding),
      expiresAt: this.deps.clock.now() + RECONNECT_TRANSACTION_TTL_MS,
    };
    await this.deps.store.put(RECONNECT_TRANSACTIONS, id, tx, { ifVersion: 0 });
    return { url: prepared.url, cookie: `${binding}.${this.sign(BINDING_PURPOSE, `${linkId}.${binding}`)}` };
  }

  async providerOf(integrationId: string): Promise<string | null> {
    return (await this.deps.integrations.find(integrationId))?.value.provider ?? null;
  }

  /** Whether a callback's `state` belongs to a reconnect link (the admin callback handles the rest). */
  async owns(state: string | null): Promise<boolean> {
    return state !== null && (await this.deps.store.get(RECONNECT_TRANSACTIONS, sha256(state))) !== null;
  }

  /**
   * The provider's answer for a reconnect transaction: the cookie must be the one the link's page set, the
   * transaction is consumed once, the link must still be active, the mailbox must be the server's; only
   * then is the link marked used and the grant stored.
   */
  async complete(callbackUrl: URL, cookie: string | null, ip?: string): Promise<{ serverId: string; mailbox: string }> {
    const state = callbackUrl.searchParams.get('state') ?? '';
    const id = sha256(state);
    const tx = await this.deps.store.get<ReconnectTransaction>(RECONNECT_TRANSACTIONS, id);
    if (!tx) throw new LinkRefusal('transaction', 'This authorization is unknown or was already used.');
    const t = tx.value;
    const [binding = '', signature = ''] = (cookie ?? '').split('.');
    if (
      !binding ||
      !this.verifies(BINDING_PURPOSE, `${t.linkId}.${binding}`, signature) ||
      !equalText(sha256(binding), t.bindingHash)
    ) {
      await this.audit(linkActor(t.linkId), 'reconnect_link.use', t.serverId, 'failure', ip, { error: 'binding' });
      throw new LinkRefusal('binding', 'This authorization was started in another browser.');
    }
    const deleted = await this.deps.store
      .delete(RECONNECT_TRANSACTIONS, id, { ifVersion: tx.version })
      .catch(() => false);
    if (!deleted) throw new LinkRefusal('transaction', 'This authorization was already used.');
    if (this.deps.clock.now() > t.expiresAt)
      throw new LinkRefusal('transaction', 'This authorization expired (more than 10 minutes passed).');
    await this.checkActive(t.linkId, t.serverId, ip);
    const server = await this.deps.servers.get(t.serverId);
    const codeVerifier = this.deps.keyring.open(t.codeVerifier, {
      collection: RECONNECT_TRANSACTIONS,
      id,
      field: 'codeVerifier',
    });
    try {
      const done = await this.deps.authorize.finish({
        integrationId: t.integrationId,
        serverId: t.serverId,
        nonce: t.nonce,
        state,
        codeVerifier,
        callbackUrl,
        actor: linkActor(t.linkId),
        ip,
        expectedMailbox: server.username ?? null,
        auditDetail: { via: 'reconnect_link', linkId: t.linkId },
        beforeStore: (mailbox) => this.consume(t.linkId, mailbox),
      });
      await this.audit(linkActor(t.linkId), 'reconnect_link.use', t.serverId, 'success', ip, {
        linkId: t.linkId,
        mailbox: done.mailbox,
      });
      return done;
    } catch (err) {
      if (err instanceof LinkRefusal) throw err;
      if (!(err instanceof AuthorizationFailure)) throw err;
      const reason: LinkRefusalReason =
        err.reason === 'wrong_mailbox' ? 'wrong_mailbox' : err.reason === 'access_denied' ? 'denied' : 'failed';
      await this.audit(linkActor(t.linkId), 'reconnect_link.use', t.serverId, 'failure', ip, {
        linkId: t.linkId,
        error: err.reason,
      });
      throw new LinkRefusal(reason, err.message, { expected: server.username ?? '', code: err.reason });
    }
  }

  /** Drops expired transactions, and links a month past their end (their audit entries stay). */
  async sweepExpired(now = this.deps.clock.now()): Promise<number> {
    let n = 0;
    const drop = async (collection: string, id: string, version: number) => {
      if (await this.deps.store.delete(collection, id, { ifVersion: version }).catch(() => false)) n++;
    };
    for (const d of await this.deps.store.list<ReconnectTransaction>(RECONNECT_TRANSACTIONS))
      if (d.value.expiresAt < now) await drop(RECONNECT_TRANSACTIONS, d.id, d.version);
    for (const d of await this.deps.store.list<ReconnectLinkRecord>(RECONNECT_LINKS))
      if (d.value.expiresAt + 30 * 24 * 3600_000 < now) await drop(RECONNECT_LINKS, d.id, d.version);
    return n;
  }

  private async checkActive(linkId: string, serverId: string, ip?: string): Promise<void> {
    const doc = await this.deps.store.get<ReconnectLinkRecord>(RECONNECT_LINKS, linkId);
    const l = doc?.value;
    const reason: LinkRefusalReason | null = !l
      ? 'unknown'
      : l.status !== 'active'
        ? l.status
        : this.deps.clock.now() > l.expiresAt
          ? 'expired'
          : null;
    if (reason) {
      await this.audit(linkActor(linkId), 'reconnect_link.use', serverId, 'failure', ip, { error: reason });
      throw new LinkRefusal(reason, `This link was ${reason === 'used' ? 'already used' : reason}.`);
    }
  }

  /** Marks the link used (compare-and-set): of two callbacks racing on one link, one stores a grant. */
  private async consume(linkId: string, mailbox: string): Promise<void> {
    const doc = await this.deps.store.get<ReconnectLinkRecord>(RECONNECT_LINKS, linkId);
    if (!doc || doc.value.status !== 'active' || this.deps.clock.now() > doc.value.expiresAt)
      throw new LinkRefusal(doc?.value.status === 'revoked' ? 'revoked' : 'used', 'This link can no longer be used.');
    const value: ReconnectLinkRecord = {
      ...doc.value,
      status: 'used',
      usedAt: this.deps.clock.now(),
      usedMailbox: mailbox,
    };
    try {
      await this.deps.store.put(RECONNECT_LINKS, linkId, value, { ifVersion: doc.version });
    } catch (err) {
      if (err instanceof VersionConflictError) throw new LinkRefusal('used', 'This link was already used.');
      throw err;
    }
  }

  private async audit(
    actor: Actor,
    action: string,
    serverId: string | undefined,
    outcome: 'success' | 'failure',
    ip: string | undefined,
    detail: Record<string, string>,
  ): Promise<void> {
    await this.deps.audit.record({
      actor,
      action,
      ...(serverId ? { target: `smtp_server:${serverId}` } : {}),
      outcome,
      ...(ip ? { ip } : {}),
      detail,
    });
  }
}
