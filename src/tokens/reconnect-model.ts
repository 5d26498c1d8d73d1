import { AppError } from '../errors.js';

/** The records and refusals of reconnect links (src/tokens/reconnect-links.ts). */

export type LinkStatus = 'active' | 'used' | 'revoked';

export interface ReconnectLinkRecord {
  serverId: string;
  tokenHash: string;
  createdAt: number;
  expiresAt: number;
  createdBy: string;
  status: LinkStatus;
  usedAt: number | null;
  usedMailbox: string | null;
  revokedAt: number | null;
}

export interface ReconnectLinkView {
  id: string;
  serverId: string;
  createdAt: string;
  expiresAt: string;
  createdBy: string;
  status: LinkStatus | 'expired';
}

export type LinkRefusalReason =
  | 'tampered'
  | 'unknown'
  | 'used'
  | 'revoked'
  | 'expired'
  | 'not_oauth'
  | 'binding'
  | 'transaction'
  | 'wrong_mailbox'
  | 'denied'
  | 'failed';

/** Why a link or its callback was refused; the page names the reason in the reader's language. */
export class LinkRefusal extends AppError {
  constructor(
    readonly reason: LinkRefusalReason,
    message: string,
    readonly params: Record<string, string> = {},
  ) {
    super('oauth_failed', { message });
  }
}
