import type { MessageCatalog } from '../i18n.js';
import { audit } from './audit.js';
import { auth } from './auth.js';
import { apiKeys } from './api-keys.js';
import { common } from './common.js';
import { diagnoses } from './diagnoses.js';
import { errors } from './errors.js';
import { notifications } from './notifications.js';
import { reconnect } from './reconnect.js';
import { transports } from './transports.js';
import { servers } from './servers.js';
import { queue } from './queue.js';
import { integrations } from './integrations.js';
import { submission } from './submission.js';
import { scale } from './scale.js';
import { oauthHints } from './oauth-hints.js';
import { device } from './device.js';
import { listPages } from './list-pages.js';

/**
 * Every area's catalog, one import per area: add an area's file here and its keys are served in every
 * language (the i18n test fails when a key is missing in one of them or a template uses an unknown key).
 */
export const catalogs: readonly MessageCatalog[] = [
  audit,
  auth,
  apiKeys,
  common,
  diagnoses,
  errors,
  notifications,
  reconnect,
  transports,
  servers,
  queue,
  integrations,
  submission,
  scale,
  oauthHints,
  device,
  listPages,
];
