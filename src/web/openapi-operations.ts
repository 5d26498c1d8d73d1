import { z } from 'zod';
import { keyPolicy } from '../admin/key-policy.js';
import { createServerInput, updateServerInput } from '../mail/servers.js';
import { messageInput } from '../mail/compose.js';
import { createBody as createKeyBody, policyPatch, rotateBody as rotateKeyBody } from './api-keys.js';
import { filterQuery as auditQuery } from './audit.js';
import { batchInputDoc, batchResult } from './messages-batch.js';
import {
  createBody as createIntegrationBody,
  patchBody as patchIntegrationBody,
  rotateBody as rotateSecretBody,
  updateBody as updateIntegrationBody,
} from './oauth-integrations.js';
import { pageQuery } from './pagination.js';
import { outgoingBody } from './smtp-servers.js';
import { serverListQuery } from './smtp-servers-api.js';

/**
 * Every operation of the JSON API, for the OpenAPI document. A route added under /api/v1 without an entry here
 * fails test/integration/openapi.test.ts. Request schemas are the ones the routes validate with.
 */

export interface ApiOperation {
  method: 'get' | 'post' | 'put' | 'patch' | 'delete';
  /** OpenAPI template: `{id}` for express's `:id`. */
  path: string;
  operationId: string;
  summary: string;
  tag: string;
  scope: 'send' | 'admin' | 'none';
  body?: z.ZodType;
  query?: z.ZodType;
  headers?: Record<string, unknown>[];
  responses: Record<string, { description: string; schema?: z.ZodType }>;
}

const accepted = z.object({ id: z.string(), status: z.string() });
const ok = (description: string, schema?: z.ZodType) => ({ '200': { description, ...(schema ? { schema } : {}) } });
const created = (description: string) => ({ '201': { description } });
const noContent = { '204': { description: 'Deleted.' } };
const notFound = { '404': { description: 'No such resource.' } };

const send: ApiOperation[] = [
  {
    method: 'post',
    path: '/api/v1/messages',
    operationId: 'sendMessage',
    summary: 'Queue one message (attachments, allowed custom headers).',
    tag: 'messages',
    scope: 'send',
    body: messageInput,
    headers: [
      {
        name: 'Idempotency-Key',
        in: 'header',
        required: false,
        schema: { type: 'string', pattern: '^[\\x21-\\x7e]{1,200}$' },
      },
    ],
    responses: {
      '202': { description: 'Stored durably; delivered by the workers.', schema: accepted },
      '413': { description: 'message_too_large: above MAILGATE_MAX_MESSAGE_BYTES as sent.' },
      '429': { description: 'queue_full or rate_limited (Retry-After).' },
    },
  },
  {
    method: 'post',
    path: '/api/v1/messages/batch',
    operationId: 'sendBatch',
    summary: 'Queue up to 500 messages, each accepted or refused on its own.',
    tag: 'messages',
    scope: 'send',
    body: batchInputDoc,
    responses: {
      '202': {
        description: 'At least one accepted; results in request order.',
        schema: z.object({ results: z.array(batchResult) }),
      },
      '400': { description: 'None accepted (results say why), or the batch itself is invalid.' },
      '413': { description: 'payload_too_large: above MAILGATE_MAX_BATCH_BYTES.' },
    },
  },
  {
    method: 'get',
    path: '/api/v1/messages/{id}',
    operationId: 'getMessage',
    summary: 'Status, attempts, last error with a hint, per-recipient results.',
    tag: 'messages',
    scope: 'send',
    responses: { ...ok('The message.'), ...notFound },
  },
];

const keys: ApiOperation[] = [
  {
    method: 'post',
    path: '/api/v1/api-keys',
    operationId: 'createApiKey',
    summary: 'Create a key (shown once) with scopes and an optional policy.',
    tag: 'api-keys',
    scope: 'admin',
    body: createKeyBody,
    responses: created('The key, with `key` (only now).'),
  },
  {
    method: 'get',
    path: '/api/v1/api-keys',
    operationId: 'listApiKeys',
    summary: 'List keys (never the key), a page at a time in id order.',
    tag: 'api-keys',
    scope: 'admin',
    query: pageQuery,
    responses: ok('`{items, next?}`'),
  },
  {
    method: 'get',
    path: '/api/v1/api-keys/{id}',
    operationId: 'getApiKey',
    summary: 'One key.',
    tag: 'api-keys',
    scope: 'admin',
    responses: { ...ok('The key.'), ...notFound },
  },
  {
    method: 'patch',
    path: '/api/v1/api-keys/{id}',
    operationId: 'updateApiKeyPolicy',
    summary: 'Change the policy of a key (`null` clears a field).',
    tag: 'api-keys',
    scope: 'admin',
    body: policyPatch.partial(),
    responses: { ...ok('The key.', z.object({ policy: keyPolicy.optional() })), ...notFound },
  },
  {
    method: 'delete',
    path: '/api/v1/api-keys/{id}',
    operationId: 'revokeApiKey',
    summary: 'Revoke a key at once, on every instance.',
    tag: 'api-keys',
    scope: 'admin',
    responses: ok('The revoked key.'),
  },
  {
    method: 'post',
    path: '/api/v1/api-keys/{id}/rotate',
    operationId: 'rotateApiKey',
    summary: 'Create a successor; the old key works until the grace period ends.',
    tag: 'api-keys',
    scope: 'admin',
    body: rotateKeyBody,
    responses: created('The successor, with `key`.'),
  },
];

const servers: ApiOperation[] = [
  {
    method: 'get',
    path: '/api/v1/smtp-servers',
    operationId: 'listSmtpServers',
    summary: 'List servers (a page at a time in id order; `search` scans up to 5,000) and the outgoing-mail settings.',
    tag: 'smtp-servers',
    scope: 'admin',
    query: serverListQuery,
    responses: ok('`{items, next?, settings}`'),
  },
  {
    method: 'post',
    path: '/api/v1/smtp-servers',
    operationId: 'createSmtpServer',
    summary: 'Add a server.',
    tag: 'smtp-servers',
    scope: 'admin',
    body: createServerInput,
    responses: created('The server (no password).'),
  },
  {
    method: 'get',
    path: '/api/v1/smtp-servers/{id}',
    operationId: 'getSmtpServer',
    summary: 'One server with its state.',
    tag: 'smtp-servers',
    scope: 'admin',
    responses: { ...ok('The server.'), ...notFound },
  },
  {
    method: 'patch',
    path: '/api/v1/smtp-servers/{id}',
    operationId: 'patchSmtpServer',
    summary: 'Change a server.',
    tag: 'smtp-servers',
    scope: 'admin',
    body: updateServerInput,
    responses: ok('The server.'),
  },
  {
    method: 'put',
    path: '/api/v1/smtp-servers/{id}',
    operationId: 'updateSmtpServer',
    summary: 'Change a server (same as PATCH).',
    tag: 'smtp-servers',
    scope: 'admin',
    body: updateServerInput,
    responses: ok('The server.'),
  },
  {
    method: 'delete',
    path: '/api/v1/smtp-servers/{id}',
    operationId: 'deleteSmtpServer',
    summary: 'Delete a server.',
    tag: 'smtp-servers',
    scope: 'admin',
    responses: noContent,
  },
  {
    method: 'post',
    path: '/api/v1/smtp-servers/{id}/test',
    operationId: 'testSmtpServer',
    summary: 'Test connection: `{ok, durationMs, transcript, error?, hint?}`.',
    tag: 'smtp-servers',
    scope: 'admin',
    responses: ok('The result.'),
  },
  {
    method: 'post',
    path: '/api/v1/smtp-servers/{id}/resume',
    operationId: 'resumeSmtpServer',
    summary: 'Resume a paused server; releases held mail.',
    tag: 'smtp-servers',
    scope: 'admin',
    responses: ok('`{released}`'),
  },
  {
    method: 'post',
    path: '/api/v1/smtp-servers/{id}/disconnect',
    operationId: 'disconnectSmtpServer',
    summary: 'Revoke and forget the OAuth grant.',
    tag: 'smtp-servers',
    scope: 'admin',
    responses: ok('Disconnected.'),
  },
  {
    method: 'get',
    path: '/api/v1/smtp-servers/{id}/oauth',
    operationId: 'getSmtpServerOAuth',
    summary: 'The OAuth state of a server.',
    tag: 'smtp-servers',
    scope: 'admin',
    responses: ok('The grant state.'),
  },
  {
    method: 'put',
    path: '/api/v1/outgoing-mail',
    operationId: 'setOutgoingMail',
    summary: 'Switch outgoing mail on or off.',
    tag: 'smtp-servers',
    scope: 'admin',
    body: outgoingBody,
    responses: ok('The settings.'),
  },
  {
    method: 'get',
    path: '/api/v1/outgoing-mail',
    operationId: 'getOutgoingMail',
    summary: 'Whether outgoing mail is on.',
    tag: 'smtp-servers',
    scope: 'admin',
    responses: ok('The settings.'),
  },
];

const integrations: ApiOperation[] = [
  {
    method: 'get',
    path: '/api/v1/oauth-integrations',
    operationId: 'listOAuthIntegrations',
    summary: 'List integrations, a page at a time in id order.',
    tag: 'oauth-integrations',
    scope: 'admin',
    query: pageQuery,
    responses: ok('`{items, next?}`'),
  },
  {
    method: 'post',
    path: '/api/v1/oauth-integrations',
    operationId: 'createOAuthIntegration',
    summary: 'Add an integration.',
    tag: 'oauth-integrations',
    scope: 'admin',
    body: createIntegrationBody,
    responses: created('The integration (no secret).'),
  },
  {
    method: 'get',
    path: '/api/v1/oauth-integrations/{id}',
    operationId: 'getOAuthIntegration',
    summary: 'One integration.',
    tag: 'oauth-integrations',
    scope: 'admin',
    responses: { ...ok('The integration.'), ...notFound },
  },
  {
    method: 'put',
    path: '/api/v1/oauth-integrations/{id}',
    operationId: 'updateOAuthIntegration',
    summary: 'Replace an integration.',
    tag: 'oauth-integrations',
    scope: 'admin',
    body: updateIntegrationBody,
    responses: ok('The integration.'),
  },
  {
    method: 'patch',
    path: '/api/v1/oauth-integrations/{id}',
    operationId: 'patchOAuthIntegration',
    summary: 'Change some fields.',
    tag: 'oauth-integrations',
    scope: 'admin',
    body: patchIntegrationBody,
    responses: ok('The integration.'),
  },
  {
    method: 'delete',
    path: '/api/v1/oauth-integrations/{id}',
    operationId: 'deleteOAuthIntegration',
    summary: 'Delete an integration.',
    tag: 'oauth-integrations',
    scope: 'admin',
    responses: noContent,
  },
  {
    method: 'post',
    path: '/api/v1/oauth-integrations/{id}/rotate-secret',
    operationId: 'rotateClientSecret',
    summary: 'Rotate the client secret; the old one stays until the new one is proven.',
    tag: 'oauth-integrations',
    scope: 'admin',
    body: rotateSecretBody,
    responses: ok('The result and the integration.'),
  },
];

const security: ApiOperation[] = [
  {
    method: 'get',
    path: '/api/v1/audit',
    operationId: 'listAudit',
    summary: 'The audit log, newest first.',
    tag: 'audit',
    scope: 'admin',
    query: auditQuery,
    responses: ok('`{items, nextBefore}`'),
  },
  {
    method: 'get',
    path: '/api/v1/encryption-keys',
    operationId: 'listEncryptionKeys',
    summary: 'Key ids and what each seals.',
    tag: 'encryption-keys',
    scope: 'admin',
    responses: ok('The keys (ids only).'),
  },
  {
    method: 'post',
    path: '/api/v1/encryption-keys/rotate',
    operationId: 'rotateEncryptionKeys',
    summary: 'Re-seal every value with the active key.',
    tag: 'encryption-keys',
    scope: 'admin',
    responses: ok('What was re-sealed.'),
  },
  {
    method: 'get',
    path: '/api/v1/openapi.json',
    operationId: 'getOpenApi',
    summary: 'This document.',
    tag: 'meta',
    scope: 'none',
    responses: ok('OpenAPI 3.1.'),
  },
];

export const API_OPERATIONS: readonly ApiOperation[] = [...send, ...keys, ...servers, ...integrations, ...security];
