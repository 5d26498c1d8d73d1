import { AppError } from '../errors.js';
import { requestedScopes } from '../oauth/providers/index.js';

/** What the Authorize flow works on and how it refuses, apart from the flow itself (authorize.ts re-exports it). */

export interface AuthorizableServer {
  id: string;
  name: string;
  authMethod: string;
  oauthIntegrationId: string | null;
  /** The server's SMTP user name; the mailbox when a plain OAuth 2.0 provider returns no ID token. */
  username?: string | null;
  /** `smtp`/`smtps`, `graph` or `gmail_api`: the scopes asked for depend on it. */
  protocol?: string | undefined;
}

const GLOBAL_GRAPH = 'https://graph.microsoft.com';

/** Default scopes of the HTTP mail protocols (DESIGN.md "Beyond SMTP AUTH"); SMTP uses the integration's. */
export const PROTOCOL_SCOPES: Readonly<Record<string, readonly string[]>> = {
  graph: ['https://graph.microsoft.com/Mail.Send', 'offline_access'],
  gmail_api: ['https://www.googleapis.com/auth/gmail.send'],
};

/**
 * The default scopes of the server's protocol plus the integration's (which add, never replace). Microsoft
 * issues one token per resource, so for Graph the integration's SMTP-resource scopes (outlook.office.com, the
 * SMTP default) are left out: asked together they would give a token Graph refuses. A sovereign cloud's Graph
 * (the integration's `graphBaseUrl`: graph.microsoft.us, microsoftgraph.chinacloudapi.cn, …) is its own resource,
 * so Mail.Send is asked of that origin.
 */
export function scopesForServer(
  protocol: string | undefined,
  integrationScopes: readonly string[],
  graphBaseUrl?: string | null,
): string[] {
  const graphOrigin = graphBaseUrl ? new URL(graphBaseUrl).origin : GLOBAL_GRAPH;
  const own = (PROTOCOL_SCOPES[protocol ?? ''] ?? []).map((s) =>
    s.startsWith(`${GLOBAL_GRAPH}/`) ? `${graphOrigin}${s.slice(GLOBAL_GRAPH.length)}` : s,
  );
  const added =
    protocol === 'graph'
      ? integrationScopes.filter((s) => !/^https:\/\/outlook\.office(365)?\.com\//i.test(s))
      : integrationScopes;
  return requestedScopes([...own, ...added]);
}

export interface ServerLookup {
  get(id: string): Promise<AuthorizableServer>;
}

/** Why a callback can be refused; pages translate each one (`oauthFailure.<reason>`). */
export const AUTHORIZATION_REFUSALS = [
  'missing_state',
  'unknown_state',
  'expired',
  'foreign_session',
  'access_denied',
  'provider_error',
  'wrong_issuer',
  'no_email',
  'email_unverified',
  'wrong_mailbox',
  'exchange_failed',
] as const;

export type AuthorizationRefusal = (typeof AUTHORIZATION_REFUSALS)[number];

/** Why a callback was refused (`oauth_failed`), for a clear page; `serverId` when known (never from the query). */
export class AuthorizationFailure extends AppError {
  constructor(
    readonly reason: AuthorizationRefusal,
    message: string,
    readonly serverId: string | null = null,
    hint: string | null = null,
    /** For pages in other languages: the message's values and the diagnosis code its hint came from. */
    readonly translation: { params?: Record<string, string>; hintCode?: string } = {},
  ) {
    super('oauth_failed', { message, hint: hint ?? undefined });
  }
}
