import type { Express } from 'express';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { createApp } from '../../src/app.js';
import { messageInput } from '../../src/mail/compose.js';
import { startTestApp, type TestApp } from '../fakes/app.js';

// GET /api/v1/openapi.json documents the whole JSON API: every /api/v1 route express serves is in it with its
// methods, and nothing else is; request bodies are the validating zod schemas, converted.

interface Layer {
  route?: { path: string | string[]; methods: Record<string, boolean> };
  handle?: { stack?: Layer[] };
}

/** Every `METHOD /path` express would route, found by walking the router stacks (nested routers included). */
function routesOf(app: Express): string[] {
  const out: string[] = [];
  const walk = (stack: Layer[]) => {
    for (const layer of stack) {
      if (layer.route) {
        const paths = Array.isArray(layer.route.path) ? layer.route.path : [layer.route.path];
        for (const p of paths)
          for (const [method, on] of Object.entries(layer.route.methods))
            if (on && method !== '_all') out.push(`${method.toUpperCase()} ${p}`);
      } else if (layer.handle?.stack) walk(layer.handle.stack);
    }
  };
  walk((app as unknown as { router: { stack: Layer[] } }).router.stack);
  return out;
}

type Doc = {
  openapi: string;
  paths: Record<string, Record<string, { requestBody?: { content: Record<string, { schema: unknown }> } }>>;
};

describe('the OpenAPI document', () => {
  let app: TestApp;
  let doc: Doc;

  beforeAll(async () => {
    app = await startTestApp();
    const res = await fetch(`${app.url}/api/v1/openapi.json`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^application\/json/);
    doc = (await res.json()) as Doc;
  });
  afterAll(async () => {
    await app?.close();
  });

  it('is OpenAPI 3.1 with a bearer scheme and an error schema', () => {
    expect(doc.openapi).toBe('3.1.0');
    expect(doc).toMatchObject({
      components: { securitySchemes: { apiKey: { type: 'http', scheme: 'bearer' } }, schemas: { Error: {} } },
    });
  });

  it('has every /api/v1 route express serves, and only those', () => {
    const served = routesOf(createApp(app.services))
      .filter((r) => /^\w+ \/api\/v1\//.test(r))
      .map((r) => r.replace(/:(\w+)/g, '{$1}'));
    const documented = Object.entries(doc.paths).flatMap(([p, ops]) =>
      Object.keys(ops).map((m) => `${m.toUpperCase()} ${p}`),
    );
    expect(served.length).toBeGreaterThan(20);
    expect([...new Set(served)].sort()).toEqual([...new Set(documented)].sort());
  });

  it('describes request bodies with the schemas that validate them', () => {
    const body = doc.paths['/api/v1/messages']!.post!.requestBody!.content['application/json']!.schema as {
      properties: Record<string, Record<string, unknown>>;
      additionalProperties: boolean;
    };
    const { $schema: _drop, ...expected } = z.toJSONSchema(messageInput, { io: 'input', unrepresentable: 'any' });
    expect(body).toEqual(expected);
    expect(body.additionalProperties).toBe(false);
    expect(body.properties.attachments).toMatchObject({
      type: 'array',
      items: { required: ['filename', 'content'], properties: { content: { contentEncoding: 'base64' } } },
    });
    expect(JSON.stringify(body.properties.headers)).toContain('List-Unsubscribe');
    const batch = doc.paths['/api/v1/messages/batch']!.post!.requestBody!.content['application/json']!.schema as {
      properties: { messages: { maxItems: number; items: unknown } };
    };
    expect(batch.properties.messages.maxItems).toBe(500);
    expect(batch.properties.messages.items).toEqual(expected);
  });

  it('is served without an API key and holds no value from the store', async () => {
    const key = await app.apiKey(['admin']);
    const text = await (await fetch(`${app.url}/api/v1/openapi.json`)).text();
    expect(text).not.toContain(key);
    expect(text).not.toMatch(/mgk_[A-Za-z0-9_-]{43}/);
  });
});
