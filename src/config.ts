import { readFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { z } from 'zod';

/**
 * The environment, parsed once at start into a frozen Config. Every bad variable is reported at once
 * (ConfigError.problems), each with what was expected, so an operator fixes them all in one go.
 * `*_FILE` variants of the secret variables read the value from a file (Docker/Kubernetes secrets).
 */

const bool = z
  .enum(['true', 'false', '1', '0', 'yes', 'no', ''])
  .transform((v) => v === 'true' || v === '1' || v === 'yes');

const httpUrl = z.url({ protocol: /^https?$/, error: 'expected an http:// or https:// URL' });

/** Variables that may also be given as `NAME_FILE=/path/to/secret`. */
export const SECRET_VARIABLES = [
  'REDIS_URL',
  'MAILGATE_ENCRYPTION_KEYS',
  'MAILGATE_SESSION_SECRETS',
  'MAILGATE_ADMIN_PASSWORD',
  'MAILGATE_METRICS_TOKEN',
] as const;

export interface EncryptionKey {
  id: string;
  key: Buffer;
}

const KEY_ID = /^[A-Za-z0-9_-]{1,32}$/;

/** `kid:base64,kid:base64`: 32-byte AES-256 keys; the first one seals, all of them open. */
export function parseEncryptionKeys(raw: string): { keys: EncryptionKey[]; problems: string[] } {
  const problems: string[] = [];
  const keys: EncryptionKey[] = [];
  const seen = new Set<string>();
  const entries = raw
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s.length > 0);
  if (entries.length === 0) problems.push('no key given; expected kid:base64 entries separated by commas');
  for (const [index, entry] of entries.entries()) {
    const at = `entry ${index + 1}`;
    const colon = entry.indexOf(':');
    if (colon < 0) {
      problems.push(`${at}: expected kid:base64 (a key id, a colon, then 32 bytes in base64)`);
      continue;
    }
    const id = entry.slice(0, colon);
    const material = entry.slice(colon + 1);
    if (!KEY_ID.test(id)) problems.push(`${at}: key id "${id.slice(0, 40)}" must be 1-32 of A-Z a-z 0-9 _ -`);
    if (seen.has(id)) problems.push(`${at}: key id "${id}" appears more than once`);
    seen.add(id);
    if (!/^[A-Za-z0-9+/_-]+={0,2}$/.test(material)) {
      problems.push(`${at} (${id}): key is not valid base64`);
      continue;
    }
    const key = Buffer.from(material.replace(/-/g, '+').replace(/_/g, '/'), 'base64');
    if (key.length !== 32) {
      problems.push(
        `${at} (${id}): key is ${key.length} bytes, expected 32 (generate one with: openssl rand -base64 32)`,
      );
      continue;
    }
    keys.push({ id, key });
  }
  return { keys, problems };
}

/** Parses one MAILGATE_EGRESS_ALLOW entry; returns a problem sentence, or null when it is valid. */
export function egressEntryProblem(entry: string): string | null {
  if (entry.includes('://')) return `"${entry.slice(0, 60)}": expected a host name, an IP address or a CIDR, not a URL`;
  const slash = entry.indexOf('/');
  if (slash >= 0) {
    const address = entry.slice(0, slash);
    const prefix = entry.slice(slash + 1);
    const family = net.isIP(address);
    if (family === 0) return `"${entry.slice(0, 60)}": the part before / is not an IP address`;
    if (!/^\d{1,3}$/.test(prefix) || Number(prefix) > (family === 4 ? 32 : 128))
      return `"${entry.slice(0, 60)}": the prefix length must be 0-${family === 4 ? 32 : 128}`;
    return null;
  }
  if (net.isIP(entry.replace(/^\[|\]$/g, '')) !== 0) return null;
  if (/^(?=.{1,253}$)[A-Za-z0-9_]([A-Za-z0-9_-]{0,62})(\.[A-Za-z0-9_]([A-Za-z0-9_-]{0,62}))*\.?$/.test(entry))
    return null;
  return `"${entry.slice(0, 60)}": expected a host name, an IP address or a CIDR such as 10.0.0.0/8`;
}

const egressAllow = z
  .string()
  .transform((raw) =>
    raw
      .split(',')
      .map((s) => s.trim())
      .filter((s) => s.length > 0),
  )
  .superRefine((entries, ctx) => {
    for (const entry of entries) {
      const problem = egressEntryProblem(entry);
      if (problem) ctx.addIssue({ code: 'custom', message: problem });
    }
  });

const schema = z.object({
  // Environment name; `production` turns on secure defaults that cannot be relaxed.
  NODE_ENV: z.enum(['development', 'production', 'test']).default('development'),
  // TCP port the HTTP server listens on.
  PORT: z.coerce.number().int().min(0).max(65535).default(3000),
  // Address the HTTP server binds to; loopback by default, so a first start is not reachable from the network until the operator says so (0.0.0.0 or :: in a container).
  MAILGATE_HOST: z.string().min(1).default('127.0.0.1'),
  // Port of the SMTP submission front (587, 2525, …); unset = no SMTP listener.
  MAILGATE_SUBMISSION_PORT: z.coerce.number().int().min(0).max(65535).optional(),
  // Address the SMTP submission front binds to; defaults to MAILGATE_HOST.
  MAILGATE_SUBMISSION_HOST: z.string().min(1).optional(),
  // PEM certificate (chain) the submission front presents; without it and the key, a self-signed one is generated once and kept sealed in the store.
  MAILGATE_SUBMISSION_TLS_CERT_FILE: z.string().min(1).optional(),
  // PEM private key of that certificate.
  MAILGATE_SUBMISSION_TLS_KEY_FILE: z.string().min(1).optional(),
  // `true`: TLS from the first byte (port-465 style) instead of STARTTLS.
  MAILGATE_SUBMISSION_IMPLICIT_TLS: bool.default(false),
  // Public URL of mailgate as browsers see it; OAuth redirect URIs are built from it. Default http://localhost:$PORT.
  MAILGATE_BASE_URL: httpUrl.transform((u) => u.replace(/\/+$/, '')).optional(),
  // Folder of the embedded store (documents, key file, session secret) when REDIS_URL is not set.
  MAILGATE_DATA_DIR: z.string().min(1).default('./data'),
  // `always`: the embedded store answers a write (HTTP 202, a rotated token, a key rotation) only once it is fsynced; `off` trusts the OS page cache.
  MAILGATE_FSYNC: z.enum(['always', 'off'], { error: 'expected always or off' }).default('always'),
  // Redis connection URL (redis:// or rediss://); when set, Redis holds the store, sessions, locks, queue and rate limits.
  REDIS_URL: z
    .url({ protocol: /^rediss?$/, error: 'expected redis://[user:password@]host:port[/db] or rediss://…' })
    .optional(),
  // `cluster`: REDIS_URL names any node of a Redis Cluster (ioredis Cluster client, data keys under one hash tag); `single`: one Redis.
  MAILGATE_REDIS_MODE: z.enum(['single', 'cluster'], { error: 'expected single or cluster' }).default('single'),
  // Prefix for every Redis key, so several deployments or test runs can share one Redis.
  MAILGATE_REDIS_PREFIX: z
    .string()
    .regex(/^[A-Za-z0-9:_.-]{1,64}$/, 'expected 1-64 of A-Z a-z 0-9 : _ . -')
    .default('mailgate:'),
  // Encryption keys `kid:base64,...` (32 bytes each); the first seals, all open. Required with Redis.
  MAILGATE_ENCRYPTION_KEYS: z.string().optional(),
  // Session signing secrets, comma-separated; the first signs, all verify. Required with Redis.
  MAILGATE_SESSION_SECRETS: z.string().optional(),
  // First sysadmin, created at start when no user exists yet.
  MAILGATE_ADMIN_EMAIL: z.email({ error: 'expected an email address' }).optional(),
  // Password of that first sysadmin (at least 12 characters).
  MAILGATE_ADMIN_PASSWORD: z.string().min(12, 'expected at least 12 characters').optional(),
  // Number of reverse-proxy hops to trust for the client IP and protocol (0 = none).
  MAILGATE_TRUST_PROXY: z.coerce.number().int().min(0).max(10).default(0),
  // Log level: fatal, error, warn, info, debug, trace, silent.
  MAILGATE_LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  // Overrides the host of every SMTP server (wins over the form, like -Dmail.smtp.host).
  MAILGATE_SMTP_HOST: z.string().min(1).optional(),
  // Overrides the port of every SMTP server (like -Dmail.smtp.port).
  MAILGATE_SMTP_PORT: z.coerce.number().int().min(1).max(65535).optional(),
  // Host name mailgate announces in EHLO (like -Dmail.smtp.localhost).
  MAILGATE_SMTP_LOCALHOST: z
    .string()
    .regex(/^[A-Za-z0-9.-]{1,253}$|^\[[0-9a-fA-F:.]+\]$/, 'expected a host name or [IP literal]')
    .optional(),
  // JSON file of SMTP servers defined outside the UI; shown read-only, never exported.
  MAILGATE_SMTP_SERVERS_FILE: z.string().min(1).optional(),
  // Protocol-level SMTP logs (secrets masked).
  MAILGATE_MAIL_DEBUG: bool.default(false),
  // Hold every message instead of sending it (staging copies never mail real users).
  MAILGATE_SEND_DISABLED: bool.default(false),
  // Display-name format of the From header; {name} is the sender's display name. No <, >, @ or ": mail
  // clients would show an address inside the name.
  MAILGATE_FROM_FORMAT: z
    .string()
    .includes('{name}', { message: 'must contain {name}' })
    .refine((v) => !/[<>@"]/.test(v), 'must not contain <, >, @ or "')
    .default('{name} (mailgate)'),
  // Issuer of the Google preset (tests point it at a local provider).
  MAILGATE_GOOGLE_ISSUER: httpUrl.default('https://accounts.google.com'),
  // Authority of the Microsoft preset; the issuer is `${authority}/${tenant}/v2.0`.
  MAILGATE_MICROSOFT_AUTHORITY: httpUrl
    .default('https://login.microsoftonline.com')
    .transform((u) => u.replace(/\/+$/, '')),
  // Microsoft Graph base URL for servers with protocol graph (sovereign clouds, tests); operator-trusted.
  MAILGATE_GRAPH_URL: httpUrl.default('https://graph.microsoft.com').transform((u) => u.replace(/\/+$/, '')),
  // Gmail API base URL for servers with protocol gmail_api (tests); operator-trusted.
  MAILGATE_GMAIL_API_URL: httpUrl.default('https://gmail.googleapis.com').transform((u) => u.replace(/\/+$/, '')),
  // Allow plain-http OAuth issuers (local test providers only); refused with NODE_ENV=production.
  MAILGATE_ALLOW_INSECURE_OAUTH: bool.default(false),
  // Delivery attempts before a temporarily failing message goes to the error queue.
  MAILGATE_QUEUE_MAX_ATTEMPTS: z.coerce.number().int().min(1).max(100).default(8),
  // Messages delivered at once by each instance.
  MAILGATE_QUEUE_CONCURRENCY: z.coerce.number().int().min(1).max(256).default(8),
  // First retry delay in milliseconds; doubles each attempt, with jitter, up to one hour.
  MAILGATE_QUEUE_RETRY_BASE_MS: z.coerce.number().int().min(10).max(3_600_000).default(30_000),
  // Messages not yet delivered (queued, sending, deferred, held) across all instances; new ones past it get 429.
  MAILGATE_QUEUE_MAX_MESSAGES: z.coerce.number().int().min(1).default(100_000),
  // Bytes of messages not yet delivered across all instances; new ones past it get 429.
  MAILGATE_QUEUE_MAX_BYTES: z.coerce
    .number()
    .int()
    .min(1)
    .default(1024 ** 3),
  // One message's size as it will be sent (MIME, encoded), on every path: the API, a batch entry, the SMTP front.
  MAILGATE_MAX_MESSAGE_BYTES: z.coerce
    .number()
    .int()
    .min(1024)
    .default(25 * 1024 ** 2),
  // One request to POST /api/v1/messages/batch, whole; 413 above it.
  MAILGATE_MAX_BATCH_BYTES: z.coerce
    .number()
    .int()
    .min(1024)
    .default(50 * 1024 ** 2),
  // How long a claimed message stays with its worker without a heartbeat (extended every third of it): a dead instance's messages are retried after this.
  MAILGATE_QUEUE_LEASE_MS: z.coerce.number().int().min(1000).max(600_000).default(20_000),
  // Run the queue workers and token scheduler in this process (turn off for web-only instances).
  MAILGATE_WORKERS: bool.default(true),
  // Bearer token /metrics requires when set (16+ characters); unset, /metrics answers anyone.
  MAILGATE_METRICS_TOKEN: z.string().min(16, 'expected at least 16 characters (openssl rand -base64 32)').optional(),
  // Host names, IP addresses and CIDRs (comma-separated) that admin-entered endpoints may reach although loopback or private (needed in production).
  MAILGATE_EGRESS_ALLOW: egressAllow.default([]),
});

type Env = z.output<typeof schema>;

export interface Config extends Omit<
  Env,
  'MAILGATE_ENCRYPTION_KEYS' | 'MAILGATE_SESSION_SECRETS' | 'MAILGATE_DATA_DIR' | 'MAILGATE_BASE_URL'
> {
  /** Public URL without a trailing slash. */
  MAILGATE_BASE_URL: string;
  /** Absolute path of the data folder. */
  MAILGATE_DATA_DIR: string;
  /** Parsed keys, first = active; undefined means the embedded key file is used. */
  encryptionKeys: readonly EncryptionKey[] | undefined;
  /** Session secrets, first signs; undefined means the embedded secret file is used. */
  sessionSecrets: readonly string[] | undefined;
  /** True when MAILGATE_BASE_URL is https: cookies get Secure and the __Host- prefix. */
  secureCookies: boolean;
}

export class ConfigError extends Error {
  constructor(readonly problems: readonly string[]) {
    super(`Invalid configuration:\n${problems.map((p) => `  - ${p}`).join('\n')}`);
    this.name = 'ConfigError';
  }
}

type EnvSource = Readonly<Record<string, string | undefined>>;

/** Resolves `NAME_FILE` variants; reports a variable given both ways or an unreadable file. */
function resolveSecretFiles(env: EnvSource, problems: string[]): Record<string, string | undefined> {
  const out: Record<string, string | undefined> = { ...env };
  for (const name of SECRET_VARIABLES) {
    const file = env[`${name}_FILE`];
    if (file === undefined || file === '') continue;
    if (env[name] !== undefined && env[name] !== '') {
      problems.push(`${name} and ${name}_FILE are both set; set only one`);
      continue;
    }
    try {
      out[name] = readFileSync(file, 'utf8').replace(/\r?\n$/, '');
    } catch (err) {
      problems.push(`${name}_FILE: cannot read ${file} (${(err as NodeJS.ErrnoException).code ?? 'error'})`);
    }
  }
  // Empty strings mean "not set", as in most shells' `VAR=` idiom.
  for (const [k, v] of Object.entries(out)) if (v === '') delete out[k];
  return out;
}

/** True for `localhost`, `*.localhost`, 127.0.0.0/8 and [::1]: addresses that never leave the machine. */
function isLoopbackHostname(hostname: string): boolean {
  const host = hostname.toLowerCase().replace(/^\[|\]$/g, '');
  return host === 'localhost' || host.endsWith('.localhost') || host === '::1' || /^127(\.\d{1,3}){3}$/.test(host);
}

/** The secure defaults NODE_ENV=production promises: no plain-http public URL, no plain-http OAuth. */
function productionProblems(resolved: Record<string, string | undefined>): string[] {
  const problems: string[] = [];
  const baseUrl = resolved.MAILGATE_BASE_URL;
  if (baseUrl !== undefined && URL.canParse(baseUrl)) {
    const url = new URL(baseUrl);
    if (url.protocol === 'http:' && !isLoopbackHostname(url.hostname)) {
      problems.push(
        `MAILGATE_BASE_URL: plain http is refused with NODE_ENV=production (session cookies and OAuth codes would travel unencrypted); use https:// (got "${baseUrl.slice(0, 60)}")`,
      );
    }
  }
  const insecure = resolved.MAILGATE_ALLOW_INSECURE_OAUTH;
  if (insecure !== undefined && bool.safeParse(insecure).data === true) {
    problems.push(
      'MAILGATE_ALLOW_INSECURE_OAUTH: refused with NODE_ENV=production (plain-http OAuth is for local test providers only); remove it',
    );
  }
  return problems;
}

export function loadConfig(env: EnvSource = process.env): Config {
  const problems: string[] = [];
  const resolved = resolveSecretFiles(env, problems);
  const parsed = schema.safeParse(resolved);
  if (!parsed.success) {
    for (const issue of parsed.error.issues) {
      const name = issue.path.join('.');
      const shown =
        name.endsWith('PASSWORD') || (SECRET_VARIABLES as readonly string[]).includes(name)
          ? ''
          : ` (got "${String(resolved[name] ?? '').slice(0, 60)}")`;
      problems.push(`${name}: ${issue.message}${shown}`);
    }
  }
  let encryptionKeys: EncryptionKey[] | undefined;
  if (resolved.MAILGATE_ENCRYPTION_KEYS !== undefined) {
    const { keys, problems: keyProblems } = parseEncryptionKeys(resolved.MAILGATE_ENCRYPTION_KEYS);
    problems.push(...keyProblems.map((p) => `MAILGATE_ENCRYPTION_KEYS: ${p}`));
    encryptionKeys = keys;
  }
  let sessionSecrets: string[] | undefined;
  if (resolved.MAILGATE_SESSION_SECRETS !== undefined) {
    sessionSecrets = resolved.MAILGATE_SESSION_SECRETS.split(',')
      .map((s) => s.trim())
      .filter(Boolean);
    if (sessionSecrets.some((s) => s.length < 32))
      problems.push('MAILGATE_SESSION_SECRETS: each secret must be at least 32 characters');
    if (new Set(sessionSecrets).size !== sessionSecrets.length)
      problems.push('MAILGATE_SESSION_SECRETS: a secret appears more than once');
  }
  if (resolved.REDIS_URL !== undefined) {
    // Several instances share Redis, so they must share keys and secrets too: no per-instance files.
    if (resolved.MAILGATE_ENCRYPTION_KEYS === undefined)
      problems.push('MAILGATE_ENCRYPTION_KEYS: required when REDIS_URL is set (every instance must share the keys)');
    if (resolved.MAILGATE_SESSION_SECRETS === undefined)
      problems.push('MAILGATE_SESSION_SECRETS: required when REDIS_URL is set (every instance must share the secrets)');
  }
  if (resolved.MAILGATE_REDIS_MODE === 'cluster' && resolved.REDIS_URL === undefined)
    problems.push('MAILGATE_REDIS_MODE: cluster needs REDIS_URL (any node of the cluster)');
  if ((resolved.MAILGATE_ADMIN_EMAIL === undefined) !== (resolved.MAILGATE_ADMIN_PASSWORD === undefined)) {
    problems.push('MAILGATE_ADMIN_EMAIL and MAILGATE_ADMIN_PASSWORD: set both or neither');
  }
  if (resolved.NODE_ENV === 'production') problems.push(...productionProblems(resolved));
  if (problems.length > 0 || !parsed.success) throw new ConfigError(problems);
  const { MAILGATE_ENCRYPTION_KEYS: _k, MAILGATE_SESSION_SECRETS: _s, ...rest } = parsed.data;
  const config: Config = {
    ...rest,
    MAILGATE_BASE_URL: rest.MAILGATE_BASE_URL ?? `http://localhost:${rest.PORT}`,
    MAILGATE_DATA_DIR: path.resolve(rest.MAILGATE_DATA_DIR),
    encryptionKeys,
    sessionSecrets,
    secureCookies: rest.MAILGATE_BASE_URL?.startsWith('https://') ?? false,
  };
  return Object.freeze(config);
}
