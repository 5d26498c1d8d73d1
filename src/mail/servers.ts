/**
 * SMTP servers, in servers/: the stored document, views and the rules every server meets (model.ts), provider
 * presets (presets.ts), form and API input (validation.ts), servers from MAILGATE_SMTP_SERVERS_FILE (file.ts),
 * the environment overrides (resolve.ts), the switch, default server and pauses (state.ts), and the service
 * with its caches (service.ts).
 */

export { loadServersFile } from './servers/file.js';
export {
  DEFAULT_TIMEOUT_MS,
  PAUSES,
  SERVERS,
  SERVERS_CHANNEL,
  SETTINGS_MESSAGE,
  defaultPort,
  effectiveTimeout,
  isApiProtocol,
  isLoopbackHost,
  plaintextAuthProblem,
  type ApiProtocol,
  type AuthMethod,
  type PauseDoc,
  type Protocol,
  type ResolvedServer,
  type ServiceProvider,
  type SmtpServerDoc,
  type SmtpServerView,
} from './servers/model.js';
export { PROVIDER_PRESETS } from './servers/presets.js';
export {
  createSmtpServers,
  type AuditContext,
  type MailSettingsView,
  type SmtpServers,
  type SmtpServersDeps,
} from './servers/service.js';
export {
  createServerInput,
  updateServerInput,
  type CreateServerInput,
  type UpdateServerInput,
} from './servers/validation.js';
