import { AuditLog } from '../admin/audit.js';
import { MIN_PASSWORD_LENGTH, UserService } from '../admin/users.js';
import { parse, promptHidden } from './admin-commands.js';
import { cliActor, withCliContext } from './context.js';
import { formatTable } from './table.js';
import { CliError, EXIT, type CliCommand, type CliIO } from './types.js';

/**
 * Admin accounts from the command line: list, set a password, disable and enable. A new password or a disabled
 * account ends that user's sessions on every instance at their next request. Every change is audited.
 */

function emailArgument(positionals: string[], usage: string): string {
  const email = positionals[0];
  if (!email || positionals.length > 1) throw new CliError(`usage: ${usage}`, EXIT.unusable);
  if (!/^[^\s@]+@[^\s@]+$/.test(email)) throw new CliError(`"${email}" is not an email address`, EXIT.unusable);
  return email;
}

/** The config demands MAILGATE_ADMIN_EMAIL and _PASSWORD together; these commands use the password alone. */
function withoutAdminVariables(io: CliIO): CliIO {
  const { MAILGATE_ADMIN_EMAIL: _e, MAILGATE_ADMIN_PASSWORD: _p, ...env } = io.env;
  return { ...io, env };
}

const usersList: CliCommand = {
  name: 'users list',
  summary: 'list admin accounts (email, role, enabled or disabled)',
  usage: 'mailgate users list',
  async run(args, io) {
    parse(args, [], this.usage!);
    return withCliContext(withoutAdminVariables(io), async ({ store }) => {
      const users = await new UserService(store).list();
      io.stdout.write(
        formatTable(
          ['EMAIL', 'ROLE', 'STATUS', 'CREATED'],
          users.map((u) => [u.email, u.role, u.disabled ? 'disabled' : 'enabled', u.createdAt]),
        ),
      );
      return EXIT.ok;
    });
  },
};

const usersPasswd: CliCommand = {
  name: 'users passwd',
  summary: "set a user's password (asks for it, or reads MAILGATE_ADMIN_PASSWORD); ends their sessions",
  usage:
    'mailgate users passwd <email>\nThe password is never taken from the command line: it is asked for without echo, or read from MAILGATE_ADMIN_PASSWORD.',
  async run(args, io) {
    const { positionals } = parse(args, [], 'mailgate users passwd <email>');
    const email = emailArgument(positionals, 'mailgate users passwd <email>');
    let password = io.env.MAILGATE_ADMIN_PASSWORD;
    if (!password) {
      password = await promptHidden(io, `New password (at least ${MIN_PASSWORD_LENGTH} characters): `);
      if ((await promptHidden(io, 'Repeat the password: ')) !== password)
        throw new CliError('the passwords differ; nothing was changed', EXIT.failed);
    }
    if (password.length < MIN_PASSWORD_LENGTH)
      throw new CliError(
        `the password must be at least ${MIN_PASSWORD_LENGTH} characters; nothing was changed`,
        EXIT.failed,
      );
    const pw = password;
    return withCliContext(withoutAdminVariables(io), async ({ store }) => {
      const user = await new UserService(store).setPassword(email, pw);
      await new AuditLog(store).record({
        actor: cliActor(),
        action: 'user.password_change',
        target: `user:${user.email}`,
        outcome: 'success',
      });
      io.stdout.write(`Changed the password of ${user.email}; their sessions have ended.\n`);
      return EXIT.ok;
    });
  },
};

function disableCommand(disabled: boolean): CliCommand {
  const verb = disabled ? 'disable' : 'enable';
  const usage = `mailgate users ${verb} <email>`;
  return {
    name: `users ${verb}`,
    summary: disabled
      ? 'disable a user: no login, and their sessions end at their next request'
      : 'let a disabled user log in again',
    usage,
    async run(args, io) {
      const { positionals } = parse(args, [], usage);
      const email = emailArgument(positionals, usage);
      return withCliContext(withoutAdminVariables(io), async ({ store }) => {
        const user = await new UserService(store).setDisabled(email, disabled);
        await new AuditLog(store).record({
          actor: cliActor(),
          action: `user.${verb}`,
          target: `user:${user.email}`,
          outcome: 'success',
        });
        io.stdout.write(
          disabled
            ? `Disabled ${user.email}; their sessions have ended.\n`
            : `Enabled ${user.email}; they can log in again.\n`,
        );
        return EXIT.ok;
      });
    },
  };
}

export const usersCommands: CliCommand[] = [usersList, usersPasswd, disableCommand(true), disableCommand(false)];
