import { Router } from 'express';
import { z } from 'zod';
import { API_OPERATIONS, type ApiOperation } from './openapi-operations.js';
import { MORE_API_OPERATIONS } from './openapi-operations-more.js';

/**
 * GET /api/v1/openapi.json: an OpenAPI 3.1 document of the whole JSON API. Request bodies and query strings are
 * generated (z.toJSONSchema) from the very zod schemas the routes validate with, so the document cannot drift
 * from what is accepted; test/integration/openapi.test.ts checks that every /api/v1 route is in it and vice versa.
 */

type JsonSchema = Record<string, unknown>;

/** The schema of what a client sends (before transforms and defaults), OpenAPI 3.1 = JSON Schema 2020-12. */
function inputSchema(schema: z.ZodType): JsonSchema {
  const { $schema: _drop, ...rest } = z.toJSONSchema(schema, { io: 'input', unrepresentable: 'any' }) as JsonSchema;
  return rest;
}

const errorSchema: JsonSchema = {
  type: 'object',
  required: ['error'],
  properties: {
    error: {
      type: 'object',
      required: ['code', 'message'],
      properties: {
        code: { type: 'string', description: 'Stable, English; see the error table in the README.' },
        message: { type: 'string', description: 'Follows Accept-Language (en, ja).' },
        details: {
          type: 'array',
          items: {
            type: 'object',
            properties: { field: { type: 'string' }, message: { type: 'string' } },
          },
        },
      },
    },
  },
};

const ERROR_RESPONSES: Record<string, string> = {
  '400': 'Invalid request (validation_failed names each field).',
  '401': 'Missing, unknown or revoked API key.',
  '403': 'The key lacks the scope, or its policy forbids this.',
};

function pathParameters(path: string): JsonSchema[] {
  return [...path.matchAll(/\{([^}]+)\}/g)].map((m) => ({
    name: m[1],
    in: 'path',
    required: true,
    schema: { type: 'string', pattern: '^[A-Za-z0-9_-]{1,64}$' },
  }));
}

function queryParameters(query: z.ZodType | undefined): JsonSchema[] {
  if (!query) return [];
  const schema = inputSchema(query) as { properties?: Record<string, JsonSchema>; required?: string[] };
  return Object.entries(schema.properties ?? {}).map(([name, s]) => ({
    name,
    in: 'query',
    required: schema.required?.includes(name) ?? false,
    schema: s,
  }));
}

/** A body whose fields are all optional may be left out. */
function requestBody(body: z.ZodType): JsonSchema {
  const schema = inputSchema(body) as { required?: string[] };
  return { required: (schema.required?.length ?? 0) > 0, content: { 'application/json': { schema } } };
}

function operationObject(op: ApiOperation): JsonSchema {
  const responses: Record<string, JsonSchema> = {};
  for (const [status, r] of Object.entries(op.responses)) {
    responses[status] = {
      description: r.description,
      ...(r.schema ? { content: { 'application/json': { schema: inputSchema(r.schema) } } } : {}),
    };
  }
  for (const [status, description] of Object.entries(op.scope === 'none' ? {} : ERROR_RESPONSES)) {
    responses[status] ??= {
      description,
      content: { 'application/json': { schema: { $ref: '#/components/schemas/Error' } } },
    };
  }
  const parameters = [...pathParameters(op.path), ...queryParameters(op.query), ...(op.headers ?? [])];
  return {
    operationId: op.operationId,
    summary: op.summary,
    tags: [op.tag],
    security: op.scope === 'none' ? [] : [{ apiKey: [] }],
    ...(op.scope === 'none' ? {} : { 'x-mailgate-scope': op.scope }),
    ...(parameters.length ? { parameters } : {}),
    ...(op.body ? { requestBody: requestBody(op.body) } : {}),
    responses,
  };
}

export function buildOpenApiDocument(baseUrl?: string): JsonSchema {
  const paths: Record<string, Record<string, JsonSchema>> = {};
  for (const op of [...API_OPERATIONS, ...MORE_API_OPERATIONS])
    (paths[op.path] ??= {})[op.method] = operationObject(op);
  return {
    openapi: '3.1.0',
    info: {
      title: 'mailgate',
      version: '1',
      description:
        'OAuth 2.0 mail integration service. Send with a key of scope `send`; manage with scope `admin`. ' +
        'Errors are `{"error": {"code", "message", "details"}}`.',
    },
    ...(baseUrl ? { servers: [{ url: baseUrl }] } : {}),
    paths,
    components: {
      securitySchemes: {
        apiKey: { type: 'http', scheme: 'bearer', description: 'An API key, `mgk_…` (Authorization: Bearer).' },
      },
      schemas: { Error: errorSchema },
    },
  };
}

export function openApiRouter(options: { baseUrl?: string } = {}): Router {
  const router = Router();
  let document: string | null = null;
  // Public like any API description: it names fields, never a value. Built once, on first use.
  router.get('/api/v1/openapi.json', (_req, res) => {
    document ??= JSON.stringify(buildOpenApiDocument(options.baseUrl));
    res.type('application/json').send(document);
  });
  return router;
}
