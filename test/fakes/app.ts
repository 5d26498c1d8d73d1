import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import type { Writable } from 'node:stream';
import type { ApiScope, Role } from '../../src/admin/types.js';
import { createRequestListener } from '../../src/app.js';
import { loadConfig, type Config } from '../../src/config.js';
import { Keyring } from '../../src/crypto/keyring.js';
import { createLogger } from '../../src/log.js';
import { createServices, type ServiceBase, type Services } from '../../src/services.js';
import { openStore } from '../../src/store/open-store.js';
import type { Store } from '../../src/store/store.js';
import type { SessionPolicy } from '../../src/web/session.js';
import { redisUrlForTests, uniquePrefix } from './redis.js';

/**
 * The shared test harness: a real mailgate (the services and app production builds, on the real file
 * store or a real Redis with a private key prefix) listening on 127.0.0.1, plus helpers to get an API
 * key and a logged-in browser-like HTTP session.
 *
 *   const app = await startTestApp({ store: 'redis' });
 *   const key = await app.apiKey(['send']);
 *   const admin = await app.browserSession('sysadmin');
 *   const res = await admin.postForm('/admin/api-keys', { name: 'ci', scopes: ['send'] });
 *   await app.close();
 *
 * A second instance on the same data: `startTestApp({ shareWith: app })` (same Redis prefix, keys, secrets).
 */

/** scrypt at N=2^12: a few ms per check instead of a few hundred, same code path. */
const TEST_SCRYPT = { log2N: 12, r: 8, p: 1 };

export interface TestAppOptions {
  /** `redis-cluster`: on the Redis Cluster at `clusterUrl` (test/fakes/redis-cluster.ts), MAILGATE_REDIS_MODE=cluster. */
  store?: 'file' | 'redis' | 'redis-cluster';
  /** Any node of the cluster, with `store: 'redis-cluster'`. */
  clusterUrl?: string;
  /** Extra environment variables (override the harness defaults). */
  env?: Record<string, string>;
  /** Start background work (queue workers, token scheduler). Default false. */
  workers?: boolean;
  /** Another test app whose store (Redis prefix or data dir), keys and session secrets this one shares. */
  shareWith?: TestApp;
  sessionPolicy?: SessionPolicy;
  /** Clock for session timeouts and records; default Date.now. */
  clock?: () => number;
  /** Where JSON log lines go (default: nowhere unless MAILGATE_LOG_LEVEL is set in env). */
  logDestination?: Writable;
  /** DNS answers for egress-checked connections (a name server that rebinds names at will). */
  egressResolve?: ServiceBase['egressResolve'];
  /** scrypt cost of the app's password hashes: cheap by default here, since nothing in a test needs it slow. */
  passwordHashing?: ServiceBase['passwordHashing'];
  /** Test seams of the services (timings of the OAuth scheduler, the mail queue, notifications). */
  seams?: Pick<ServiceBase, 'oauthTuning' | 'notifyTuning' | 'mail'>;
  /** Extra trusted CAs for SMTP TLS (a test SMTP server with implicit TLS). */
  tlsCa?: string[];
}

export interface TestApp {
  url: string;
  services: Services;
  store: Store;
  config: Config;
  /** The environment the config was loaded from (for shareWith). */
  env: Record<string, string>;
  /** Creates an API key with these scopes directly in the service; returns the key. */
  apiKey(scopes: ApiScope[], name?: string): Promise<string>;
  /** Logs in through /login as this app's user of that role (created on first use); the session holds the cookie. */
  browserSession(role?: Role): Promise<HttpSession>;
  /** Creates a user with a random password; returns its credentials. */
  createUser(role?: Role): Promise<{ email: string; password: string }>;
  /** A cookie-jar HTTP client that is not logged in. */
  anonymousSession(): HttpSession;
  close(): Promise<void>;
}

const CSRF_INPUT = /name="_csrf" value="([^"]+)"/;

/** A browser-like client: a cookie jar, manual redirects, and forms posted with the session's CSRF token. */
export class HttpSession {
  readonly cookies = new Map<string, string>();
  csrf: string | null = null;

  constructor(readonly baseUrl: string) {}

  cookieHeader(): string {
    return [...this.cookies].map(([k, v]) => `${k}=${v}`).join('; ');
  }

  async fetch(pathname: string, init: RequestInit = {}): Promise<Response> {
    const headers = new Headers(init.headers);
    if (this.cookies.size > 0 && !headers.has('cookie')) headers.set('cookie', this.cookieHeader());
    const res = await fetch(new URL(pathname, this.baseUrl), { ...init, headers, redirect: 'manual' });
    for (const line of res.headers.getSetCookie()) {
      const [pair = '', ...attrs] = line.split(';').map((s) => s.trim());
      const eq = pair.indexOf('=');
      const name = pair.slice(0, eq);
      const value = pair.slice(eq + 1);
      const expired = attrs.some(
        (a) => /^max-age=(0|-)/i.test(a) || (/^expires=/i.test(a) && Date.parse(a.slice(8)) <= Date.now()),
      );
      if (expired || value === '') this.cookies.delete(name);
      else this.cookies.set(name, value);
    }
    return res;
  }

  /** GET; remembers the CSRF token of the page if it has one. Returns the response and its body text. */
  async get(pathname: string, init: RequestInit = {}): Promise<{ res: Response; text: string }> {
    const res = await this.fetch(pathname, { ...init, method: 'GET' });
    const text = await res.text();
    const token = CSRF_INPUT.exec(text)?.[1];
    if (token) this.csrf = token;
    return { res, text };
  }

  /** Fetches a page that carries the session's CSRF token (an admin page, or /login when logged out). */
  async refreshCsrf(): Promise<string> {
    let page = await this.get('/admin/audit');
    if (page.res.status !== 200) page = await this.get('/login');
    const token = CSRF_INPUT.exec(page.text)?.[1];
    if (!token) throw new Error(`no CSRF token found (status ${page.res.status})`);
    this.csrf = token;
    return token;
  }

  /**
   * Posts an urlencoded form. The CSRF token is filled in unless `csrf` says otherwise (false = none,
   * a string = that token). Arrays become repeated fields (checkbox groups).
   */
  async postForm(
    pathname: string,
    fields: Record<string, string | string[] | undefined> = {},
    options: { csrf?: string | false } = {},
  ): Promise<{ res: Response; text: string }> {
    const body = new URLSearchParams();
    const token = options.csrf === undefined ? (this.csrf ?? (await this.refreshCsrf())) : options.csrf;
    if (token !== false) body.append('_csrf', token);
    for (const [k, v] of Object.entries(fields)) {
      if (v === undefined) continue;
      for (const item of Array.isArray(v) ? v : [v]) body.append(k, item);
    }
    const res = await this.fetch(pathname, {
      method: 'POST',
      body,
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
    });
    const text = await res.text();
    const next = CSRF_INPUT.exec(text)?.[1];
    if (next) this.csrf = next;
    return { res, text };
  }

  /** Logs in through the form; throws unless mailgate answers with the redirect of a successful login. */
  async login(email: string, password: string): Promise<Response> {
    this.csrf = null;
    await this.get('/login');
    const { res } = await this.postForm('/login', { email, password });
    if (res.status !== 303) throw new Error(`login as ${email} failed with HTTP ${res.status}`);
    // The session id and its CSRF token changed at login.
    this.csrf = null;
    return res;
  }
}

export async function startTestApp(options: TestAppOptions = {}): Promise<TestApp> {
  const shared = options.shareWith;
  const kind = options.store ?? (shared ? (shared.config.REDIS_URL ? 'redis' : 'file') : 'file');
  let tmpDir: string | undefined;
  const env: Record<string, string> = shared
    ? { ...shared.env }
    : {
        NODE_ENV: 'test',
        MAILGATE_LOG_LEVEL: 'silent',
        MAILGATE_ENCRYPTION_KEYS: `t1:${randomBytes(32).toString('base64')}`,
        MAILGATE_SESSION_SECRETS: randomBytes(32).toString('base64url'),
        MAILGATE_WORKERS: options.workers ? 'true' : 'false',
        // Power-loss durability costs the suite time and is proven on its own (acknowledged-on-disk.test.ts).
        MAILGATE_FSYNC: 'off',
      };
  if (!shared) {
    if (kind === 'redis') {
      const redisUrl = redisUrlForTests();
      if (!redisUrl) throw new Error('no Redis for tests: guard the suite with describe.skipIf(!redisUrlForTests())');
      env.REDIS_URL = redisUrl;
      env.MAILGATE_REDIS_PREFIX = uniquePrefix('app');
    } else if (kind === 'redis-cluster') {
      if (!options.clusterUrl) throw new Error("store: 'redis-cluster' needs clusterUrl (startRedisCluster())");
      env.REDIS_URL = options.clusterUrl;
      env.MAILGATE_REDIS_MODE = 'cluster';
      env.MAILGATE_REDIS_PREFIX = uniquePrefix('app');
    } else {
      tmpDir = await mkdtemp(path.join(os.tmpdir(), 'mailgate-test-'));
      env.MAILGATE_DATA_DIR = tmpDir;
    }
  } else if (kind === 'file') {
    throw new Error('the embedded file store is single-process: share a Redis store between test apps');
  }
  Object.assign(env, options.env ?? {});
  if (options.workers !== undefined) env.MAILGATE_WORKERS = options.workers ? 'true' : 'false';

  const config = loadConfig(env);
  const log = createLogger({
    level: config.MAILGATE_LOG_LEVEL,
    ...(options.logDestination ? { destination: options.logDestination } : {}),
  });
  const keyring = new Keyring(config.encryptionKeys ?? []);
  const store = await openStore(config);
  const services = await createServices({
    config,
    store,
    keyring,
    log,
    sessionPolicy: options.sessionPolicy,
    clock: options.clock,
    passwordHashing: options.passwordHashing ?? TEST_SCRYPT,
    ...(options.egressResolve ? { egressResolve: options.egressResolve } : {}),
    ...options.seams,
    ...(options.tlsCa ? { mail: { ...options.seams?.mail, tlsCa: options.tlsCa } } : {}),
  });
  const server = http.createServer(createRequestListener(services));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  if (config.MAILGATE_WORKERS) await services.start();

  let closed = false;
  const sessionUsers: Partial<Record<Role, Promise<{ email: string; password: string }>>> = {};
  const testApp: TestApp = {
    url,
    services,
    store,
    config,
    env,
    async apiKey(scopes, name = 'test key') {
      const created = await services.apiKeys.create({ name, scopes, actor: { type: 'system', id: 'test' } });
      return created.key;
    },
    async createUser(role = 'sysadmin') {
      const email = `${role}-${randomBytes(4).toString('hex')}@example.test`;
      const password = randomBytes(18).toString('base64url');
      await services.users.create({ email, password, role });
      return { email, password };
    },
    async browserSession(role = 'sysadmin') {
      // One user per role and app: hashing a password costs a third of a second, a login costs the same again.
      const user = (sessionUsers[role] ??= testApp.createUser(role));
      const { email, password } = await user;
      const session = new HttpSession(url);
      await session.login(email, password);
      return session;
    },
    anonymousSession() {
      return new HttpSession(url);
    },
    async close() {
      if (closed) return;
      closed = true;
      await services.stop();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await store.close();
      if (tmpDir) await rm(tmpDir, { recursive: true, force: true });
    },
  };
  return testApp;
}
