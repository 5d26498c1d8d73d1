import * as oidc from 'openid-client';
import { serviceAccountAssertion, signingKey } from './app-credentials.js';
import {
  OAuthProtocolError,
  type AppCredential,
  type ClientOptions,
  type ClientSettings,
  type DeviceAuthorization,
  type OAuthErrorKind,
  type TokenSet,
} from './oauth-types.js';
import { findEgressDenial } from '../net/egress.js';

/**
 * The only module that talks OAuth on the wire (the only importer of openid-client). Everything else sees
 * plain settings in, plain token sets out, and OAuthProtocolError (an AppError) with a `kind` the callers act on:
 * `invalid_grant` (the refresh token is dead: re-authorize), `invalid_client` (client id/secret wrong),
 * `temporary` (5xx, timeout, network: retry later), `denied` (the user said no) or `protocol` (anything else).
 */

export * from './oauth-types.js';

const JWT_BEARER = 'urn:ietf:params:oauth:grant-type:jwt-bearer';

/**
 * private_key_jwt as Microsoft requires it: the certificate named by its thumbprints (`x5t#S256`, and `x5t` for
 * older tenants) instead of a key id, and the token endpoint as audience.
 */
async function certificateAuth(
  credential: Extract<AppCredential, { kind: 'certificate' }>,
  tokenEndpoint: () => string | undefined,
): Promise<oidc.ClientAuth> {
  return oidc.PrivateKeyJwt(await signingKey(credential.privateKeyPem), {
    [oidc.modifyAssertion]: (header, payload) => {
      const h = header as unknown as Record<string, unknown>;
      delete h.kid;
      h['x5t#S256'] = credential.x5tS256;
      h.x5t = credential.x5t;
      const aud = tokenEndpoint();
      if (aud) payload.aud = aud;
    },
  });
}

export function classifyOAuthError(err: unknown): OAuthProtocolError {
  if (err instanceof OAuthProtocolError) return err;
  // The egress policy refused the endpoint's address: nothing reached the provider, nothing to retry.
  const denied = findEgressDenial(err);
  if (denied) return new OAuthProtocolError('protocol', 'egress_denied', denied.message, { cause: denied });
  if (err instanceof oidc.ResponseBodyError) {
    const code = err.error;
    const kind: OAuthErrorKind =
      code === 'invalid_grant'
        ? 'invalid_grant'
        : code === 'invalid_client' || code === 'unauthorized_client'
          ? 'invalid_client'
          : err.status >= 500 || code === 'temporarily_unavailable' || code === 'server_error'
            ? 'temporary'
            : 'protocol';
    return new OAuthProtocolError(kind, code, err.error_description, { cause: err, status: err.status });
  }
  if (err instanceof oidc.AuthorizationResponseError) {
    return new OAuthProtocolError(
      err.error === 'access_denied' ? 'denied' : 'protocol',
      err.error,
      err.error_description,
      { cause: err },
    );
  }
  if (err instanceof oidc.WWWAuthenticateChallengeError) {
    const challenge = err.cause[0];
    const code = challenge?.parameters.error;
    return new OAuthProtocolError(
      code === 'invalid_client' || err.status === 401 ? 'invalid_client' : 'protocol',
      code ?? 'invalid_client',
      challenge?.parameters.error_description,
      {
        cause: err,
        status: err.status,
      },
    );
  }
  if (err instanceof oidc.ClientError) {
    const code = err.code ?? '';
    if (code === 'OAUTH_TIMEOUT' || code === 'OAUTH_ABORT')
      return new OAuthProtocolError('temporary', 'timeout', 'the provider did not answer in time', { cause: err });
    if (code === 'OAUTH_RESPONSE_IS_NOT_CONFORM' || code === 'OAUTH_RESPONSE_IS_NOT_JSON') {
      const status = (err.cause as { status?: number } | undefined)?.status;
      const temporary = status === undefined || status >= 500 || status === 429;
      return new OAuthProtocolError(
        temporary ? 'temporary' : 'protocol',
        'http_error',
        `unexpected HTTP response${status ? ` ${status}` : ''}`,
        { cause: err, status },
      );
    }
    return new OAuthProtocolError('protocol', code || 'client_error', err.message, { cause: err });
  }
  if (
    err instanceof TypeError ||
    (err instanceof Error && /fetch failed|ECONNREFUSED|ECONNRESET|socket|network/i.test(err.message))
  ) {
    return new OAuthProtocolError('temporary', 'network', 'the provider could not be reached', { cause: err });
  }
  if (err instanceof DOMException && (err.name === 'TimeoutError' || err.name === 'AbortError')) {
    return new OAuthProtocolError('temporary', 'timeout', 'the provider did not answer in time', { cause: err });
  }
  return new OAuthProtocolError('protocol', undefined, err instanceof Error ? err.message : 'unknown error', {
    cause: err,
  });
}

/** Some providers send `email_verified` as the string "true"/"false" instead of a boolean. */
function emailVerifiedOf(claim: unknown): boolean | undefined {
  if (typeof claim === 'boolean') return claim;
  if (claim === 'true' || claim === 'false') return claim === 'true';
  return undefined;
}

/** A token endpoint answer with its ID token claims (validated by openid-client) in our shape. */
function tokenSetOf(result: oidc.TokenEndpointResponse & oidc.TokenEndpointResponseHelpers): TokenSet {
  const claims = result.claims();
  return {
    accessToken: result.access_token,
    refreshToken: result.refresh_token,
    expiresIn: result.expiresIn(),
    scope: result.scope,
    claims: claims
      ? {
          sub: claims.sub,
          iss: claims.iss,
          email: typeof claims.email === 'string' ? claims.email : undefined,
          emailVerified: emailVerifiedOf(claims.email_verified),
          preferredUsername: typeof claims.preferred_username === 'string' ? claims.preferred_username : undefined,
          tid: typeof claims.tid === 'string' ? claims.tid : undefined,
        }
      : undefined,
  };
}

/** A configured client for one integration (discovery done once). */
export class OAuthClient {
  private constructor(
    private readonly configuration: oidc.Configuration,
    readonly hasIdTokenValidation: boolean,
    private readonly credential?: AppCredential | undefined,
  ) {}

  static async connect(settings: ClientSettings, options: ClientOptions): Promise<OAuthClient> {
    let configuration: oidc.Configuration | undefined;
    let discovered = false;
    const credential = settings.credential;
    try {
      const auth =
        credential?.kind === 'certificate'
          ? await certificateAuth(credential, () => configuration?.serverMetadata().token_endpoint)
          : credential?.kind === 'service_account'
            ? oidc.None()
            : oidc.ClientSecretBasic(settings.clientSecret ?? '');
      if (credential?.kind === 'service_account') {
        // The key file names its own token endpoint; there is nothing to discover for a JWT bearer grant.
        const tokenUri = credential.key.tokenUri;
        configuration = new oidc.Configuration(
          { issuer: new URL(tokenUri).origin, token_endpoint: tokenUri },
          settings.clientId,
          undefined,
          auth,
        );
        if (options.allowInsecure) oidc.allowInsecureRequests(configuration);
      } else if (settings.issuer) {
        configuration = await oidc.discovery(new URL(settings.issuer), settings.clientId, undefined, auth, {
          execute: options.allowInsecure ? [oidc.allowInsecureRequests] : [],
          timeout: options.timeoutSec,
          ...(options.fetch ? { [oidc.customFetch]: options.fetch } : {}),
        });
        discovered = true;
      } else {
        if (!settings.authorizationEndpoint || !settings.tokenEndpoint)
          throw new OAuthProtocolError('protocol', 'configuration', 'an issuer or both endpoints are needed');
        configuration = new oidc.Configuration(
          {
            issuer: new URL(settings.tokenEndpoint).origin,
            authorization_endpoint: settings.authorizationEndpoint,
            token_endpoint: settings.tokenEndpoint,
            ...(settings.revocationEndpoint ? { revocation_endpoint: settings.revocationEndpoint } : {}),
          },
          settings.clientId,
          undefined,
          auth,
        );
        if (options.allowInsecure) oidc.allowInsecureRequests(configuration);
      }
    } catch (err) {
      throw classifyOAuthError(err);
    }
    configuration.timeout = options.timeoutSec;
    if (options.fetch) configuration[oidc.customFetch] = options.fetch;
    return new OAuthClient(configuration, discovered, credential);
  }

  get issuer(): string {
    return this.configuration.serverMetadata().issuer;
  }

  get authorizationEndpoint(): string | undefined {
    return this.configuration.serverMetadata().authorization_endpoint;
  }

  get hasRevocation(): boolean {
    return Boolean(this.configuration.serverMetadata().revocation_endpoint);
  }

  authorizationUrl(params: {
    redirectUri: string;
    scope: string;
    state: string;
    nonce: string;
    codeChallenge: string;
    extras: Record<string, string>;
  }): URL {
    return oidc.buildAuthorizationUrl(this.configuration, {
      redirect_uri: params.redirectUri,
      scope: params.scope,
      response_type: 'code',
      state: params.state,
      ...(this.hasIdTokenValidation ? { nonce: params.nonce } : {}),
      code_challenge: params.codeChallenge,
      code_challenge_method: 'S256',
      ...params.extras,
    });
  }

  /** Validates the callback (state, iss), exchanges the code with the PKCE verifier, checks the ID token nonce. */
  async exchangeCode(
    callbackUrl: URL,
    checks: { codeVerifier: string; state: string; nonce: string; redirectUri: string },
  ): Promise<TokenSet> {
    try {
      const result = await oidc.authorizationCodeGrant(
        this.configuration,
        callbackUrl,
        {
          pkceCodeVerifier: checks.codeVerifier,
          expectedState: checks.state,
          ...(this.hasIdTokenValidation ? { expectedNonce: checks.nonce, idTokenExpected: true } : {}),
        },
        { redirect_uri: checks.redirectUri },
      );
      return tokenSetOf(result);
    } catch (err) {
      throw classifyOAuthError(err);
    }
  }

  async refresh(refreshToken: string): Promise<TokenSet> {
    try {
      const result = await oidc.refreshTokenGrant(this.configuration, refreshToken);
      return {
        accessToken: result.access_token,
        refreshToken: result.refresh_token,
        expiresIn: result.expiresIn(),
        scope: result.scope,
      };
    } catch (err) {
      throw classifyOAuthError(err);
    }
  }

  get hasDeviceAuthorization(): boolean {
    return Boolean(this.configuration.serverMetadata().device_authorization_endpoint);
  }

  /** RFC 8628 step one: the code the user types at the provider and where. */
  async initiateDeviceAuthorization(scope: string): Promise<DeviceAuthorization> {
    try {
      const r = await oidc.initiateDeviceAuthorization(this.configuration, { scope });
      return {
        userCode: r.user_code,
        verificationUri: r.verification_uri,
        verificationUriComplete: r.verification_uri_complete,
        expiresIn: r.expires_in,
        intervalSec: r.interval ?? 5,
        handle: r,
      };
    } catch (err) {
      throw classifyOAuthError(err);
    }
  }

  /**
   * RFC 8628 step two: polls the token endpoint at the provider's interval (slowing down when told) until the
   * user confirmed (tokens with verified ID token claims), denied (`denied`) or the code expired (`protocol`,
   * `expired_token`). `signal` stops the wait.
   */
  async pollDeviceAuthorization(device: DeviceAuthorization, signal?: AbortSignal): Promise<TokenSet> {
    try {
      const result = await oidc.pollDeviceAuthorizationGrant(
        this.configuration,
        device.handle as oidc.DeviceAuthorizationResponse,
        undefined,
        signal ? { signal } : undefined,
      );
      return tokenSetOf(result);
    } catch (err) {
      const e = classifyOAuthError(err);
      if (e.oauthError === 'access_denied')
        throw new OAuthProtocolError('denied', e.oauthError, e.description, { cause: err });
      throw e;
    }
  }

  /** A client_credentials request: proves a client secret where the provider allows that grant. */
  async clientCredentials(): Promise<void> {
    try {
      await oidc.clientCredentialsGrant(this.configuration);
    } catch (err) {
      throw classifyOAuthError(err);
    }
  }

  /**
   * An app-only access token: the client credentials grant (secret or certificate), or for a service account
   * the RFC 7523 JWT bearer grant acting as `subject`. No refresh token comes with either.
   */
  async appOnlyToken(request: { scope: string; subject?: string | undefined }): Promise<TokenSet> {
    try {
      const result =
        this.credential?.kind === 'service_account'
          ? await oidc.genericGrantRequest(this.configuration, JWT_BEARER, {
              assertion: serviceAccountAssertion(this.credential.key, {
                scope: request.scope,
                subject: request.subject,
                nowSec: Math.floor(Date.now() / 1000),
              }),
            })
          : await oidc.clientCredentialsGrant(this.configuration, { scope: request.scope });
      return {
        accessToken: result.access_token,
        expiresIn: result.expiresIn(),
        scope: result.scope ?? request.scope,
      };
    } catch (err) {
      throw classifyOAuthError(err);
    }
  }

  /** RFC 7009. Returns false when the provider has no revocation endpoint. */
  async revoke(token: string, hint: 'refresh_token' | 'access_token'): Promise<boolean> {
    if (!this.hasRevocation) return false;
    try {
      await oidc.tokenRevocation(this.configuration, token, { token_type_hint: hint });
      return true;
    } catch (err) {
      throw classifyOAuthError(err);
    }
  }
}

/** Fresh random values for an authorization request. */
export async function newAuthorizationSecrets(): Promise<{
  state: string;
  nonce: string;
  codeVerifier: string;
  codeChallenge: string;
}> {
  const codeVerifier = oidc.randomPKCECodeVerifier();
  return {
    state: oidc.randomState(),
    nonce: oidc.randomNonce(),
    codeVerifier,
    codeChallenge: await oidc.calculatePKCECodeChallenge(codeVerifier),
  };
}
