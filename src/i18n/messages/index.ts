import type { MessageCatalog } from '../i18n.js';
import { apiKeys } from './api-keys.js';
import { common } from './common.js';
import { errors } from './errors.js';

/**
 * Every area's catalog, one import per area: add an area's file here and its keys are served in every
 * language (the i18n test fails when a key is missing in one of them or a template uses an unknown key).
 */
export const catalogs: readonly MessageCatalog[] = [common, errors, apiKeys];
