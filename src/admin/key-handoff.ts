import type { Keyring } from '../crypto/keyring.js';
import type { CreatedApiKey } from './api-keys.js';

/**
 * A new API key on its way from the form's post to the page after the redirect (post/redirect/get: a reload
 * then shows the list and never creates a second key). It waits in the session, sealed with the keyring and bound
 * to the session id, so the session store never holds it in plaintext; the first page that shows it removes it.
 */
export class KeyHandoff {
  constructor(private readonly keyring: Keyring) {}

  #context(sessionId: string) {
    return { collection: 'sessions', id: sessionId, field: 'newApiKey' };
  }

  seal(created: CreatedApiKey, sessionId: string): string {
    return this.keyring.seal(JSON.stringify(created), this.#context(sessionId));
  }

  /** The key, or null when it cannot be opened (another session id, a retired encryption key). */
  open(sealed: string, sessionId: string): CreatedApiKey | null {
    try {
      return JSON.parse(this.keyring.open(sealed, this.#context(sessionId))) as CreatedApiKey;
    } catch {
      return null;
    }
  }
}
