import type { ServiceAccountKey } from './app-credentials.js';
import { AppError, type ErrorCode } from '../errors.js';

/**
 * The plain shapes of OAuth on the wire as the rest of mailgate sees them: settings in, token sets out, and the
 * one error callers read. Kept apart from client.ts (the only importer of openid-client), which re-exports them.
 */

export interface ClientSettings {
  /** Discover everything from this issuer… */
  issuer?: string | undefined;
  /** …or use explicit endpoints (custom integrations without discovery). */
  authorizationEndpoint?: string | undefined;
  tokenEndpoint?: string | undefined;
  revocationEndpoint?: string | undefined;
  clientId: string;
  /** Client secret (client_secret_basic); ignored when `credential` says otherwise. */
  clientSecret?: string | undefined;
  /** App-only credentials: a certificate (private_key_jwt) or a service-account key (JWT bearer, no client auth). */
  credential?: AppCredential | undefined;
}

/** How an app proves itself without a user: see oauth/app-credentials.ts for where these come from. */
export type AppCredential =
  | { kind: 'certificate'; privateKeyPem: string; x5t: string; x5tS256: string }
  | { kind: 'service_account'; key: ServiceAccountKey };

export interface ClientOptions {
  allowInsecure: boolean;
  /** Seconds a token endpoint request may take before it counts as a temporary failure. */
  timeoutSec: number;
  /** Replaces fetch for every request (tests inject faults here). */
  fetch?: typeof fetch | undefined;
}

export interface TokenSet {
  accessToken: string;
  refreshToken?: string | undefined;
  /** Seconds from now, as the provider said; undefined when it did not say. */
  expiresIn?: number | undefined;
  scope?: string | undefined;
  /** Verified ID token claims (authorization code grant only). */
  claims?:
    | {
        sub: string;
        iss: string;
        email?: string | undefined;
        /** The `email_verified` claim; undefined when the provider does not send it. */
        emailVerified?: boolean | undefined;
        preferredUsername?: string | undefined;
        tid?: string | undefined;
      }
    | undefined;
}

export type OAuthErrorKind = 'invalid_grant' | 'invalid_client' | 'temporary' | 'denied' | 'protocol';

const CODE_OF: Record<OAuthErrorKind, ErrorCode> = {
  invalid_grant: 'reauth_required',
  invalid_client: 'oauth_failed',
  temporary: 'provider_unavailable',
  denied: 'oauth_failed',
  protocol: 'oauth_failed',
};

/**
 * What an OAuth request failed with, as the one shape callers read (openid-client's errors never leave this
 * module). The message is the provider's and is not shown to API callers.
 */
export class OAuthProtocolError extends AppError {
  constructor(
    readonly kind: OAuthErrorKind,
    /** The OAuth `error` code when the provider sent one (`invalid_grant`, `access_denied`, …). */
    readonly oauthError: string | undefined,
    /** The provider's `error_description` (may carry AADSTS codes). Never contains a token. */
    readonly description: string | undefined,
    options?: { cause?: unknown; status?: number | undefined },
  ) {
    super(CODE_OF[kind], {
      message: `${oauthError ?? kind}${description ? `: ${description}` : ''}`,
      expose: false,
      cause: options?.cause,
    });
    this.httpStatus = options?.status;
  }
  /** The HTTP status of the provider's answer, when there was one. */
  readonly httpStatus: number | undefined;
}

/** What a device authorization started with; `handle` goes back to pollDeviceAuthorization unchanged. */
export interface DeviceAuthorization {
  userCode: string;
  verificationUri: string;
  verificationUriComplete?: string | undefined;
  /** Seconds the code stays valid. */
  expiresIn: number;
  intervalSec: number;
  handle: unknown;
}
