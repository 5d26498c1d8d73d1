import { systemClock } from '../clock.js';
import { readLocalSecrets } from '../crypto/local-secrets.js';
import { createLogger } from '../log.js';
import { createServices } from '../services.js';
import type { StoreWithSessions } from '../store/sessions.js';
import { authorizeWithDevice, DeviceAuthorizationFailure } from '../tokens/device-authorize.js';
import { cliActor, withCliContext } from './context.js';
import { cliTranslate } from './language.js';
import { CliError, EXIT, type CliCommand } from './types.js';

/**
 * `mailgate authorize <serverId> --device`: Authorize for a machine without a browser (RFC 8628, Microsoft).
 * The services are built as the web process builds them, so the grant is stored by the same code and held
 * mail of the server is released as after the browser flow. stdout carries the two lines a script or a
 * person needs (`verification_uri: …`, `user_code: …`) and the result; explanations go to stderr, in the
 * terminal's language (LC_ALL, LC_MESSAGES or LANG: Japanese or English), since the person signing in with the
 * mailbox may not be the operator. The two machine lines stay as they are.
 */

const authorize: CliCommand = {
  name: 'authorize',
  summary: "authorize a server's mailbox without a browser on this machine (device code flow, Microsoft)",
  usage:
    'mailgate authorize <serverId> --device\n' +
    '  Prints verification_uri and user_code: open the address on any device, enter the code and sign in with\n' +
    '  the mailbox. Waits until the provider answers; exits 0 once the grant is stored.',
  async run(args, io) {
    const rest = args.filter((a) => a !== '--device');
    const serverId = rest[0];
    if (!args.includes('--device') || rest.length !== 1 || !serverId || serverId.startsWith('-'))
      throw new CliError(`usage: ${this.usage}`, EXIT.unusable);
    const t = cliTranslate(io.env);
    return withCliContext(io, async (ctx) => {
      if (!ctx.keyring)
        throw new CliError('No encryption keys found (MAILGATE_ENCRYPTION_KEYS or the data folder).', EXIT.unusable);
      const sessionSecrets =
        ctx.config.sessionSecrets ?? (await readLocalSecrets(ctx.config.MAILGATE_DATA_DIR))?.sessionSecrets;
      if (!sessionSecrets)
        throw new CliError('No session secrets found (MAILGATE_SESSION_SECRETS or the data folder).', EXIT.unusable);
      const services = await createServices({
        config: ctx.config,
        store: ctx.store as StoreWithSessions,
        keyring: ctx.keyring,
        log: createLogger({ level: 'silent' }),
        sessionSecrets,
      });
      const abort = new AbortController();
      const stopListening = io.onInterrupt(() => abort.abort());
      try {
        const done = await authorizeWithDevice(
          {
            store: services.store,
            keyring: services.keyring,
            audit: services.audit,
            clock: systemClock,
            integrations: services.oauthIntegrations,
            tokens: services.tokens,
            servers: { get: (id) => services.mail.servers.get(id) },
          },
          {
            serverId,
            actor: cliActor(),
            signal: abort.signal,
            onPrompt(p) {
              io.stdout.write(`verification_uri: ${p.verificationUri}\nuser_code: ${p.userCode}\n`);
              const minutes = Math.round(p.expiresIn / 60);
              io.stderr.write(`${t('device.prompt', { uri: p.verificationUri, code: p.userCode, minutes })}\n`);
            },
          },
        );
        io.stdout.write(`${t('device.authorized', { serverId: done.serverId, mailbox: done.mailbox })}\n`);
        return EXIT.ok;
      } catch (err) {
        if (abort.signal.aborted) throw new CliError(t('device.interrupted'), EXIT.interrupted);
        if (err instanceof DeviceAuthorizationFailure)
          throw new CliError(t(err.translation.key, err.translation.params), EXIT.failed);
        throw err;
      } finally {
        stopListening();
        await services.stop().catch(() => undefined);
      }
    });
  },
};

export const authorizeCommands: readonly CliCommand[] = [authorize];
