import type { Eta } from 'eta';
import type { AuthMiddleware } from './auth.js';

/**
 * What every router factory receives besides its own services: the auth guards and the page renderer.
 * Each router declares the services it uses as a second, narrow parameter; none gets the store or the keyring.
 */
export interface WebContext {
  auth: AuthMiddleware;
  eta: Eta;
}

/** A clock in ms since epoch; tests move it. */
export type Clock = () => number;
