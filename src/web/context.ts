import type { Eta } from 'eta';
import type { AppDeps } from '../app.js';
import type { AuthMiddleware } from './auth.js';

/** What every router factory receives: the services, the auth guards and the page renderer. */
export interface WebContext {
  deps: AppDeps;
  auth: AuthMiddleware;
  eta: Eta;
}
