import { SMTPServer, type SMTPServerAuthentication } from 'smtp-server';
import type { AddressInfo } from 'node:net';
import type { FakeProvider } from './oidc-provider.js';

/**
 * Drives the local provider's devInteractions without a browser: follows redirects by hand with a cookie
 * jar that respects cookie paths, signs in as `login`, consents (or cancels), and returns the URL the
 * provider finally sends the browser to (mailgate's redirect URI with code, state and iss).
 */

interface Cookie {
  value: string;
  path: string;
}

export async function consentAtProvider(
  authorizationUrl: string,
  login: string,
  options: { deny?: boolean } = {},
): Promise<URL> {
  const jar = new Map<string, Cookie>();
  const start = new URL(authorizationUrl);
  const providerOrigin = start.origin;
  let url = start;
  let init: RequestInit = { method: 'GET' };
  for (let hop = 0; hop < 25; hop++) {
    const cookie = [...jar]
      .filter(([, c]) => url.pathname.startsWith(c.path))
      .map(([k, c]) => `${k}=${c.value}`)
      .join('; ');
    const headers = new Headers(init.headers);
    if (cookie) headers.set('cookie', cookie);
    const res = await fetch(url, { ...init, headers, redirect: 'manual' });
    for (const line of res.headers.getSetCookie()) {
      const [pair = '', ...attrs] = line.split(';').map((s) => s.trim());
      const eq = pair.indexOf('=');
      const path = attrs.find((a) => /^path=/i.test(a))?.slice(5) ?? '/';
      const expired =
        attrs.some((a) => /^expires=/i.test(a) && Date.parse(a.slice(8)) <= Date.now()) ||
        attrs.some((a) => /^max-age=0/i.test(a));
      if (expired) jar.delete(pair.slice(0, eq));
      else jar.set(pair.slice(0, eq), { value: pair.slice(eq + 1), path });
    }
    if (res.status >= 300 && res.status < 400) {
      await res.arrayBuffer();
      const next = new URL(res.headers.get('location') ?? '', url);
      if (next.origin !== providerOrigin) return next;
      url = next;
      init = { method: 'GET' };
      continue;
    }
    const html = await res.text();
    if (res.status !== 200)
      throw new Error(`provider answered ${res.status} at ${url.pathname}: ${html.slice(0, 300)}`);
    const action = /<form[^>]*action="([^"]+)"/.exec(html)?.[1];
    if (!action) throw new Error(`no form at ${url.pathname}: ${html.slice(0, 300)}`);
    if (options.deny) {
      url = new URL(`${new URL(action, url).pathname}/abort`, url);
      init = { method: 'GET' };
      continue;
    }
    const prompt = /name="prompt" value="(\w+)"/.exec(html)?.[1];
    const body =
      prompt === 'login'
        ? new URLSearchParams({ prompt, login, password: 'any' })
        : new URLSearchParams({ prompt: prompt ?? 'consent' });
    url = new URL(action, url);
    init = { method: 'POST', body: body.toString(), headers: { 'content-type': 'application/x-www-form-urlencoded' } };
  }
  throw new Error('too many redirects at the provider');
}

export interface OAuthSmtp {
  port: number;
  messages: { from: string; to: string[]; raw: string; user: string }[];
  authAttempts: { user: string; accepted: boolean }[];
  waitFor(count: number, timeoutMs?: number): Promise<void>;
  /** Closes every open connection, so the next message needs a new XOAUTH2 login (pooled clients stay authenticated otherwise). */
  dropConnections(): void;
  close(): Promise<void>;
}

/**
 * An SMTP server that accepts only XOAUTH2 and validates each access token by RFC 7662 introspection at
 * the local provider, as Gmail or Exchange Online would: the token must be active, belong to the user
 * named in the XOAUTH2 string and carry the mail scope. Loopback only, no TLS.
 */
export async function startOAuthSmtp(provider: FakeProvider): Promise<OAuthSmtp> {
  const messages: OAuthSmtp['messages'] = [];
  const authAttempts: OAuthSmtp['authAttempts'] = [];
  const mailScope = provider.kind === 'google' ? 'https://mail.google.com/' : 'https://outlook.office.com/SMTP.Send';
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
          const ok = info.active && info.sub === user && (info.scope ?? '').split(' ').includes(mailScope);
          authAttempts.push({ user, accepted: ok });
          if (ok) cb(null, { user });
          else cb(null, { data: { status: '401', schemes: 'bearer', scope: mailScope } });
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
  const port = (server.server.address() as AddressInfo).port;
  return {
    port,
    messages,
    authAttempts,
    async waitFor(count, timeoutMs = 20_000) {
      const deadline = Date.now() + timeoutMs;
      while (messages.length < count) {
        if (Date.now() > deadline) throw new Error(`expected ${count} messages, got ${messages.length}`);
        await new Promise((r) => setTimeout(r, 50));
      }
    },
    dropConnections() {
      for (const connection of (server as unknown as { connections: Set<{ close(): void }> }).connections)
        connection.close();
    },
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
