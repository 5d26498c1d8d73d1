import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createApp, createSendFastPath } from '../../src/app.js';
import { startTestApp, type TestApp } from '../fakes/app.js';
import { TEST_ACTOR } from '../fakes/oauth-setup.js';

// POST /api/v1/messages is answered before express (src/web/send-fast-path.ts). Express still has the route, and
// its answers are the contract: the same request to the fast path alone and to express alone must get the same
// status, headers and body, for a message accepted and for every way of refusing one. The fast-path server below
// answers 599 for what it leaves to express, so a request it should have taken cannot pass unnoticed.

const MAX_MESSAGE_BYTES = 64 * 1024;
const SLACK_BYTES = 8 * 1024 * 1024;
const PATH = '/api/v1/messages';
const LEFT_TO_EXPRESS = 599;

let app: TestApp;
let fastOnly: http.Server;
let expressOnly: http.Server;
let sendKey: string;
let adminKey: string;
let limitedKey: string;

interface Exchange {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

interface Call {
  method?: string;
  path?: string;
  headers?: Record<string, string>;
  body?: Buffer | string;
  /** Send the body chunked (no Content-Length). */
  chunked?: boolean;
}

function urlOf(server: http.Server): string {
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

/** One request with exactly these bytes and headers; the answer without its Date. */
function exchange(base: string, call: Call): Promise<Exchange> {
  const body = call.body === undefined ? undefined : Buffer.from(call.body);
  const url = new URL(base);
  return new Promise((resolve, reject) => {
    const req = http.request(
      {
        host: url.hostname,
        port: url.port,
        path: call.path ?? PATH,
        method: call.method ?? 'POST',
        agent: false,
        headers: {
          ...(body && !call.chunked ? { 'content-length': String(body.length) } : {}),
          ...call.headers,
        },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const { date: _date, ...headers } = res.headers;
          resolve({ status: res.statusCode!, headers, body: Buffer.concat(chunks).toString('utf8') });
        });
      },
    );
    req.on('error', reject);
    if (body && call.chunked) {
      req.write(body.subarray(0, 3));
      req.end(body.subarray(3));
    } else req.end(body);
  });
}

const json = (key: string | null, extra: Record<string, string> = {}) => ({
  'content-type': 'application/json',
  ...(key ? { authorization: `Bearer ${key}` } : {}),
  ...extra,
});

const message = (i: number) => JSON.stringify({ to: `rcpt${i}@example.net`, subject: `fast ${i}`, text: 'hello' });

/** The call answered by the fast path alone and by express alone: the two answers, checked equal. */
async function same(call: Call): Promise<Exchange> {
  const fast = await exchange(urlOf(fastOnly), call);
  expect(fast.status, 'the fast path left this to express').not.toBe(LEFT_TO_EXPRESS);
  const viaExpress = await exchange(urlOf(expressOnly), call);
  expect(fast).toEqual(viaExpress);
  return fast;
}

async function listen(listener: http.RequestListener): Promise<http.Server> {
  const server = http.createServer(listener);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return server;
}

beforeAll(async () => {
  app = await startTestApp({ store: 'file', env: { MAILGATE_MAX_MESSAGE_BYTES: String(MAX_MESSAGE_BYTES) } });
  await app.services.mail.servers.create(
    {
      name: 'Nowhere',
      fromAddress: 'sender@example.com',
      host: '127.0.0.1',
      port: 2525,
      protocol: 'smtp',
      isDefault: true,
    },
    { actor: TEST_ACTOR },
  );
  sendKey = await app.apiKey(['send']);
  adminKey = await app.apiKey(['admin']);
  limitedKey = (
    await app.services.apiKeys.create({
      name: 'one a minute',
      scopes: ['send'],
      actor: TEST_ACTOR,
      policy: { rateLimitPerMinute: 1 },
    })
  ).key;
  const fast = createSendFastPath(app.services);
  fastOnly = await listen((req, res) => {
    if (fast(req, res)) return;
    req.resume();
    res.statusCode = LEFT_TO_EXPRESS;
    res.end();
  });
  expressOnly = await listen(createApp(app.services));
});

afterAll(async () => {
  for (const server of [fastOnly, expressOnly]) await new Promise((resolve) => server?.close(resolve));
  await app?.close();
});

describe('POST /api/v1/messages before express', () => {
  it('a message accepted: the same 202, headers and body shape (only the id differs)', async () => {
    const fast = await exchange(urlOf(fastOnly), { headers: json(sendKey), body: message(1) });
    const viaExpress = await exchange(urlOf(expressOnly), { headers: json(sendKey), body: message(2) });
    expect(fast.status).toBe(202);
    expect(viaExpress.status).toBe(202);
    const ids = [fast, viaExpress].map((r) => (JSON.parse(r.body) as { id: string }).id);
    for (const [i, r] of [fast, viaExpress].entries()) {
      expect(JSON.parse(r.body)).toEqual({ id: ids[i], status: 'queued' });
      expect(r.headers.location).toBe(`${PATH}/${ids[i]}`);
      expect(r.headers.etag).toMatch(/^W\/"[0-9a-f]+-[A-Za-z0-9+/]{27}"$/);
    }
    const { location: _l1, etag: _e1, ...fastRest } = fast.headers;
    const { location: _l2, etag: _e2, ...expressRest } = viaExpress.headers;
    expect(fastRest).toEqual(expressRest);
    expect(fastRest['content-security-policy']).toContain("default-src 'self'");
    expect(fastRest['x-content-type-options']).toBe('nosniff');
    expect(fastRest['idempotent-replayed']).toBeUndefined();
    expect(await app.services.mail.queue.get(ids[0]!)).toMatchObject({ status: 'queued' });
  });

  it('an idempotent replay: the same message, Idempotent-Replayed, byte for byte the same answer', async () => {
    const headers = json(sendKey, { 'idempotency-key': 'fast-path-replay-1' });
    const first = await exchange(urlOf(fastOnly), { headers, body: message(3) });
    expect(first.status).toBe(202);
    expect(first.headers['idempotent-replayed']).toBeUndefined();
    const replay = await same({ headers, body: message(3) });
    expect(replay.status).toBe(202);
    expect(replay.headers['idempotent-replayed']).toBe('true');
    expect(JSON.parse(replay.body)).toEqual(JSON.parse(first.body));
    expect(replay.headers.etag).toBe(first.headers.etag);
  });

  it('a bad Idempotency-Key is a validation error naming it', async () => {
    const r = await same({ headers: json(sendKey, { 'idempotency-key': 'with space' }), body: message(4) });
    expect(r.status).toBe(400);
    expect(JSON.parse(r.body)).toMatchObject({ error: { code: 'validation_failed' } });
  });

  it('no key, a malformed key, an unknown key: 401 with the Bearer challenge', async () => {
    for (const key of [null, 'not-a-key', `mg_${'x'.repeat(40)}`]) {
      const r = await same({ headers: json(key), body: message(5) });
      expect(r.status).toBe(401);
      expect(r.headers['www-authenticate']).toBe('Bearer realm="mailgate"');
      expect(JSON.parse(r.body)).toMatchObject({ error: { code: 'invalid_api_key' } });
    }
  });

  it('a key without the send scope: 403 insufficient_scope', async () => {
    const r = await same({ headers: json(adminKey), body: message(6) });
    expect(r.status).toBe(403);
    expect(JSON.parse(r.body)).toMatchObject({ error: { code: 'insufficient_scope' } });
  });

  it('past the key rate: 429 with Retry-After on both', async () => {
    const first = await exchange(urlOf(fastOnly), { headers: json(limitedKey), body: message(7) });
    expect(first.status).toBe(202);
    const fast = await exchange(urlOf(fastOnly), { headers: json(limitedKey), body: message(8) });
    const viaExpress = await exchange(urlOf(expressOnly), { headers: json(limitedKey), body: message(8) });
    expect(fast.status).toBe(429);
    // The seconds left in the minute may tick between the two requests; everything else is the same.
    for (const r of [fast, viaExpress]) expect(r.headers['retry-after']).toMatch(/^[0-9]+$/);
    const strip = ({ headers: { 'retry-after': _r, ...headers }, ...rest }: Exchange) => ({ ...rest, headers });
    expect(strip(fast)).toEqual(strip(viaExpress));
    expect(JSON.parse(fast.body)).toMatchObject({ error: { code: 'rate_limited' } });
  });

  it('broken JSON, a JSON string, an empty object: the same 400s', async () => {
    for (const body of ['{"to": ', '"to"', '{}']) {
      const r = await same({ headers: json(sendKey), body });
      expect(r.status).toBe(400);
    }
  });

  it('a validation error names every field, in the reader language (Accept-Language and the cookie)', async () => {
    const body = JSON.stringify({ to: 'not an address', subject: 's', text: 't', extra: 1 });
    const en = await same({ headers: json(sendKey), body });
    expect(en.status).toBe(400);
    const details = (JSON.parse(en.body) as { error: { details: { field: string }[] } }).error.details;
    expect(details.map((d) => d.field)).toEqual(expect.arrayContaining(['to']));
    for (const extra of [{ 'accept-language': 'ja' }, { cookie: 'mailgate_lang=ja' }] as Record<string, string>[]) {
      const ja = await same({ headers: json(null, extra), body });
      expect(ja.status).toBe(401);
      expect(JSON.parse(ja.body)).not.toEqual(JSON.parse((await same({ headers: json(null), body })).body));
    }
  });

  it('a message larger than MAILGATE_MAX_MESSAGE_BYTES once parsed: 413 message_too_large', async () => {
    const body = JSON.stringify({ to: 'a@example.net', subject: 's', text: 'x'.repeat(MAX_MESSAGE_BYTES * 2) });
    const r = await same({ headers: json(sendKey), body });
    expect(r.status).toBe(413);
    expect(JSON.parse(r.body)).toMatchObject({ error: { code: 'message_too_large' } });
  });

  it('a body over the limit, by its Content-Length or as it arrives chunked: 413 and the connection closes', async () => {
    const body = Buffer.alloc(MAX_MESSAGE_BYTES + SLACK_BYTES + 1, 0x20);
    body[0] = 0x7b;
    for (const chunked of [false, true]) {
      const r = await same({ headers: json(sendKey), body, chunked });
      expect(r.status).toBe(413);
      expect(r.headers.connection).toBe('close');
      expect(JSON.parse(r.body)).toMatchObject({ error: { code: 'message_too_large' } });
    }
  });

  it('a chunked body and a query string are served by the fast path too', async () => {
    const r = await exchange(urlOf(fastOnly), { headers: json(sendKey), body: message(10), chunked: true });
    expect(r.status).toBe(202);
    const q = await same({ path: `${PATH}?x=1`, headers: json(null), body: message(11) });
    expect(q.status).toBe(401);
  });

  it('counts its requests in the metrics under the route, as express does', async () => {
    const count = async (status: string) =>
      (await app.services.metrics.httpRequests.get()).values.find(
        (v) => v.labels.route === PATH && v.labels.method === 'POST' && v.labels.status === status,
      )?.value ?? 0;
    const before = await count('401');
    await exchange(urlOf(fastOnly), { headers: json(null), body: message(12) });
    expect(await count('401')).toBe(before + 1);
    await exchange(urlOf(expressOnly), { headers: json(null), body: message(12) });
    expect(await count('401')).toBe(before + 2);
  });
});

describe('what the fast path leaves to express', () => {
  const cases: [string, Call][] = [
    ['text/plain', { headers: { 'content-type': 'text/plain', authorization: 'Bearer x' }, body: message(1) }],
    ['no Content-Type', { headers: { authorization: 'Bearer x' }, body: message(1) }],
    ['an empty body', { headers: json(null) }],
    ['a trailing slash', { path: `${PATH}/`, headers: json(null), body: message(1) }],
    ['another case', { path: '/API/v1/Messages', headers: json(null), body: message(1) }],
    ['GET', { method: 'GET', headers: json(null) }],
    ['HEAD', { method: 'HEAD', headers: json(null) }],
    ['PUT', { method: 'PUT', headers: json(null), body: message(1) }],
    ['DELETE', { method: 'DELETE', headers: json(null) }],
    ['the batch route', { path: `${PATH}/batch`, headers: json(null), body: '{"messages":[]}' }],
  ];
  for (const [label, call] of cases) {
    it(`${label}: left to express, answered as express alone answers it`, async () => {
      expect((await exchange(urlOf(fastOnly), call)).status).toBe(LEFT_TO_EXPRESS);
      const served = await exchange(app.url, call);
      expect(served).toEqual(await exchange(urlOf(expressOnly), call));
      expect(served.status).toBeGreaterThanOrEqual(400);
    });
  }
});
