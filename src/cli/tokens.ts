import { AuditLog } from '../admin/audit.js';
import { createLogger } from '../log.js';
import { IntegrationService } from '../oauth/integrations.js';
import { countGrantsOfIntegration, GRANTS, type GrantRecord } from '../tokens/grants.js';
import { disconnectGrant } from '../tokens/revoke.js';
import { cliActor, withCliContext } from './context.js';
import { formatTable } from './table.js';
import { CliError, EXIT, type CliCommand } from './types.js';

/** OAuth grants from the command line: list them, revoke one (local tokens first, then the provider). */

const tokensList: CliCommand = {
  name: 'tokens list',
  summary: 'list OAuth grants (one per SMTP server): mailbox, state, last refresh',
  usage: 'mailgate tokens list',
  async run(_args, io) {
    return withCliContext(io, async (ctx) => {
      const grants = await ctx.store.list<GrantRecord>(GRANTS);
      const rows = grants.map((g) => [
        g.id,
        g.value.mailbox,
        g.value.status,
        g.value.lastRefreshAt ? new Date(g.value.lastRefreshAt).toISOString() : '—',
        g.value.lastError?.code ?? '',
      ]);
      io.stdout.write(`${formatTable(['GRANT', 'MAILBOX', 'STATE', 'LAST REFRESH', 'LAST ERROR'], rows)}`);
      return EXIT.ok;
    });
  },
};

const tokensRevoke: CliCommand = {
  name: 'tokens revoke',
  summary: "delete a grant's tokens, then revoke its refresh token at the provider (RFC 7009) where it has an endpoint",
  usage: 'mailgate tokens revoke <grant>   (the grant id is the SMTP server id; see mailgate tokens list)',
  async run(args, io) {
    const grantId = args[0];
    if (!grantId || args.length > 1 || grantId.startsWith('-'))
      throw new CliError(`usage: ${this.usage}`, EXIT.unusable);
    return withCliContext(io, async (ctx) => {
      if (!ctx.keyring)
        throw new CliError(
          'No encryption keys found, so no sealed token can exist here; nothing to revoke.',
          EXIT.failed,
        );
      const log = createLogger({ level: 'silent' });
      const audit = new AuditLog(ctx.store);
      const integrations = new IntegrationService({
        config: ctx.config,
        store: ctx.store,
        keyring: ctx.keyring,
        log,
        audit,
        grantsOf: (id) => countGrantsOfIntegration(ctx.store, id),
      });
      const result = await disconnectGrant(
        { store: ctx.store, keyring: ctx.keyring, log, audit, integrations },
        grantId,
        cliActor(),
      );
      io.stdout.write(`Deleted the tokens of ${result.mailbox} (server ${result.serverId}).\n`);
      io.stdout.write(
        result.revokedAtProvider
          ? 'The refresh token was revoked at the provider.\n'
          : `Not revoked at the provider. ${result.note ?? ''}\n`,
      );
      io.stdout.write('Queued mail for this server stays held until someone presses Authorize again.\n');
      return EXIT.ok;
    });
  },
};

export const tokensCommands: readonly CliCommand[] = [tokensList, tokensRevoke];
