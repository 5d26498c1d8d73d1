/**
 * A server's honest state: one code an admin acts on, the first that applies in this order (DESIGN.md,
 * "Server state"): sending_disabled, misconfigured, not_authorized, needs_reauth, paused, test_failed, ok.
 * Pure, so the list, the server page and the API can never disagree.
 */

export const SERVER_STATE_CODES = [
  'sending_disabled',
  'misconfigured',
  'not_authorized',
  'needs_reauth',
  'paused',
  'test_failed',
  'ok',
] as const;
export type ServerStateCode = (typeof SERVER_STATE_CODES)[number];

export interface ServerStateFacts {
  sendingEnabled: boolean;
  authMethod: string;
  /** oauth2 only: the integration is missing, was refused by the provider, or its secret expired. */
  integrationProblem: boolean;
  /** oauth2 only: the grant's status, null when nobody authorized a mailbox. */
  grantStatus: string | null;
  paused: boolean;
  /** The last Test connection or Send test email of this server, if any. */
  lastTestOk: boolean | null;
}

export function serverStateCode(f: ServerStateFacts): ServerStateCode {
  if (!f.sendingEnabled) return 'sending_disabled';
  const oauth = f.authMethod === 'oauth2';
  if (oauth && f.integrationProblem) return 'misconfigured';
  if (oauth && f.grantStatus === null) return 'not_authorized';
  if (oauth && f.grantStatus !== 'active') return 'needs_reauth';
  if (f.paused) return 'paused';
  if (f.lastTestOk === false) return 'test_failed';
  return 'ok';
}
