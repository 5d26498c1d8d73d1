import { AppError } from '../errors.js';
import type { GrantError } from './grants.js';

/** The errors the token service hands to senders: the code tells the transport to hold or to retry. */

/** The grant is dead until an admin re-authorizes; the code lets the transport hold mail instead of retrying. */
export function reauthError(message?: string, hint?: string): AppError {
  return new AppError('reauth_required', {
    ...(message ? { message } : {}),
    hint,
    details: hint ? [{ field: '', message: hint }] : [],
  });
}

/** The provider cannot give a token now; mailgate retries with backoff. */
export function temporaryError(lastError: GrantError | null): AppError {
  return new AppError('provider_unavailable', {
    message: lastError
      ? `The identity provider is unavailable (${lastError.code}); mailgate retries with backoff.`
      : 'The identity provider is unavailable; mailgate retries with backoff.',
    expose: true,
    details: lastError ? [{ field: '', message: lastError.hint }] : [],
  });
}
