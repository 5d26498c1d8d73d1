import type { Translate } from '../i18n/i18n.js';
import type { SmtpServerView } from '../mail/servers.js';
import type { LastTests } from '../mail/servers/last-test.js';
import { serverStateCode, type ServerStateCode } from '../mail/servers/server-state.js';

/**
 * The state shown for a server in the list, on its page and in the API: one code, a message and the one
 * action that fixes it, in the reader's language (the code stays English).
 */

export interface OAuthFacts {
  /** null when nobody authorized a mailbox for the server. */
  grantStatus: string | null;
  integrationProblem: boolean;
}

export interface ServerStateDeps {
  lastTests: LastTests;
  /** The grant and integration of an oauth2 server (absent: OAuth is not wired, e.g. in narrow tests). */
  oauthFacts?: ((server: SmtpServerView) => Promise<OAuthFacts>) | undefined;
}

export interface ServerState {
  code: ServerStateCode;
  message: string;
  action: string;
  /** For pages: a short label and where the action is done. */
  label: string;
  href: string | null;
}

function hrefFor(code: ServerStateCode, server: SmtpServerView): string | null {
  const page = `/admin/smtp-servers/${encodeURIComponent(server.id)}`;
  switch (code) {
    case 'sending_disabled':
      return '/admin/smtp-servers#outgoing';
    case 'misconfigured':
      return server.oauthIntegrationId
        ? `/admin/oauth-integrations/${encodeURIComponent(server.oauthIntegrationId)}`
        : `${page}#server-form`;
    case 'not_authorized':
    case 'needs_reauth':
      return `${page}#oauth`;
    case 'paused':
      return `${page}#paused`;
    case 'test_failed':
      return `${page}#test-connection`;
    case 'ok':
      return null;
  }
}

export async function serverState(
  deps: ServerStateDeps,
  server: SmtpServerView,
  sendingEnabled: boolean,
  t: Translate,
): Promise<ServerState> {
  const oauth =
    server.authMethod === 'oauth2' && deps.oauthFacts
      ? await deps.oauthFacts(server)
      : { grantStatus: 'active', integrationProblem: false };
  const last = await deps.lastTests.get(server.id);
  const code = serverStateCode({
    sendingEnabled,
    authMethod: server.authMethod,
    integrationProblem: oauth.integrationProblem,
    grantStatus: oauth.grantStatus,
    paused: server.paused !== null,
    lastTestOk: last ? last.ok : null,
  });
  return {
    code,
    message: t(`servers.state.${code}.message`, { code: last?.code ?? '' }),
    action: t(`servers.state.${code}.action`),
    label: t(`servers.state.${code}.label`),
    href: hrefFor(code, server),
  };
}

/** The API's shape: no page-only fields. */
export function apiState(state: ServerState): { code: ServerStateCode; message: string; action: string } {
  return { code: state.code, message: state.message, action: state.action };
}
