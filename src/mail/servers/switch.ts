import { AppError } from '../../errors.js';
import type { AuditContext, SmtpServers } from './service-types.js';
import { invalid } from './validation.js';

export const AWAITING_GRAPH_AUTHORIZATION = 'awaiting_graph_authorization';

/**
 * Switch to Microsoft Graph: the same server (id, name, From address, prefix, queue) sends through Graph from
 * now on. Its held mail stays held (the server is paused) until the authorization with the Graph scope
 * completes, whose listener resumes the server; the user name (the mailbox) is kept.
 */
export async function switchToGraph(
  servers: SmtpServers,
  id: string,
  integrationId: string | undefined,
  ctx: AuditContext,
): Promise<void> {
  const server = await servers.get(id);
  if (server.readOnly) throw new AppError('read_only');
  const oauthIntegrationId = integrationId ?? server.oauthIntegrationId;
  if (!oauthIntegrationId)
    throw invalid([{ field: 'oauthIntegrationId', message: 'choose the Microsoft integration to authorize with' }]);
  await servers.update(id, { protocol: 'graph', authMethod: 'oauth2', oauthIntegrationId }, ctx);
  await servers.pause(id, {
    code: AWAITING_GRAPH_AUTHORIZATION,
    reason:
      'Switched to Microsoft Graph: waiting for the authorization with the Mail.Send permission (press Authorize).',
  });
}
