import { z } from 'zod';
import { testServerInput } from '../mail/servers/validation.js';
import { createChannelInput, updateChannelInput } from '../notify/channels.js';
import type { ApiOperation } from './openapi-operations.js';
import { createBody as createReconnectLinkBody } from './reconnect.js';

/**
 * Operations of the later areas (tests of unsaved server values, notification channels, reconnect links),
 * kept beside openapi-operations.ts so neither file grows past a screenful of routes per area.
 */

const ok = (description: string) => ({ '200': { description } });
const notFound = { '404': { description: 'No such resource.' } };
const listQuery = z.object({
  limit: z.coerce.number().int().min(1).max(500).optional(),
  cursor: z.string().optional(),
});

const serverTests: ApiOperation[] = [
  {
    method: 'post',
    path: '/api/v1/smtp-servers/test',
    operationId: 'testUnsavedSmtpServer',
    summary: 'Test connection on values not saved yet (`id` reuses the stored secrets of that server).',
    tag: 'smtp-servers',
    scope: 'admin',
    body: testServerInput,
    responses: ok('The result, like POST /api/v1/smtp-servers/{id}/test.'),
  },
  {
    method: 'post',
    path: '/api/v1/smtp-servers/test-email',
    operationId: 'sendTestEmail',
    summary: 'Send a test email with values not saved yet, to `testRecipient`: `{ok, messageId?, error?, hint?}`.',
    tag: 'smtp-servers',
    scope: 'admin',
    body: z.looseObject({ testRecipient: z.email() }),
    responses: ok('The result.'),
  },
];

const channels: ApiOperation[] = [
  {
    method: 'get',
    path: '/api/v1/notification-channels',
    operationId: 'listNotificationChannels',
    summary: 'Notification channels, with their delivery state.',
    tag: 'notifications',
    scope: 'admin',
    query: listQuery,
    responses: ok('`{items, next?}`.'),
  },
  {
    method: 'post',
    path: '/api/v1/notification-channels',
    operationId: 'createNotificationChannel',
    summary: 'Add a webhook (`url`, `secret` of 32+ bytes) or email (`to`) channel; optional `events`.',
    tag: 'notifications',
    scope: 'admin',
    body: createChannelInput,
    responses: { '201': { description: 'Created; the secret is never returned.' } },
  },
  ...(['get', 'patch', 'put', 'delete'] as const).map((method): ApiOperation => ({
    method,
    path: '/api/v1/notification-channels/{id}',
    operationId: `${method}NotificationChannel`,
    summary:
      method === 'get'
        ? 'One channel.'
        : method === 'delete'
          ? 'Delete a channel (its waiting deliveries go with it).'
          : 'Change a channel; a blank secret keeps the stored one.',
    tag: 'notifications',
    scope: 'admin',
    ...(method === 'patch' || method === 'put' ? { body: updateChannelInput } : {}),
    responses: { ...(method === 'delete' ? { '204': { description: 'Deleted.' } } : ok('The channel.')), ...notFound },
  })),
  {
    method: 'post',
    path: '/api/v1/notification-channels/{id}/test',
    operationId: 'testNotificationChannel',
    summary: 'Send a `test` event now: `{ok, error?}`.',
    tag: 'notifications',
    scope: 'admin',
    responses: { ...ok('The result.'), ...notFound },
  },
];

const reconnectLinks: ApiOperation[] = [
  {
    method: 'get',
    path: '/api/v1/smtp-servers/{id}/reconnect-links',
    operationId: 'listReconnectLinks',
    summary: "A server's reconnect links and their status (`active`, `used`, `revoked`, `expired`).",
    tag: 'smtp-servers',
    scope: 'admin',
    query: listQuery,
    responses: { ...ok('`{items, next}` (`next` absent on the last page), newest first.'), ...notFound },
  },
  {
    method: 'post',
    path: '/api/v1/smtp-servers/{id}/reconnect-links',
    operationId: 'createReconnectLink',
    summary: 'A signed, single-use link (7 days) with which the mailbox owner re-authorizes this server.',
    tag: 'smtp-servers',
    scope: 'admin',
    body: createReconnectLinkBody,
    responses: { '201': { description: '`{id, url, expiresAt}`; the url is shown once.' }, ...notFound },
  },
  {
    method: 'delete',
    path: '/api/v1/smtp-servers/{id}/reconnect-links/{linkId}',
    operationId: 'revokeReconnectLink',
    summary: 'Revoke a reconnect link.',
    tag: 'smtp-servers',
    scope: 'admin',
    responses: { ...ok('The link with its status: `revoked`, or as it was when no longer active.'), ...notFound },
  },
];

const queueList: ApiOperation[] = [
  {
    method: 'get',
    path: '/api/v1/messages',
    operationId: 'listMessages',
    summary: 'The queue, newest first, a page at a time; optional `status` and `serverId` filters.',
    tag: 'messages',
    scope: 'admin',
    query: listQuery.extend({
      status: z.enum(['queued', 'sending', 'sent', 'deferred', 'held', 'failed']).optional(),
      serverId: z.string().optional(),
    }),
    responses: ok('`{items, next?}`.'),
  },
];

export const MORE_API_OPERATIONS: readonly ApiOperation[] = [
  ...serverTests,
  ...channels,
  ...reconnectLinks,
  ...queueList,
];
