import { parseArgs } from 'node:util';
import { ApiKeyService } from '../admin/api-keys.js';
import { AuditLog } from '../admin/audit.js';
import { SessionGeneration } from '../admin/sessions.js';
import type { ApiScope } from '../admin/types.js';
import { MIN_PASSWORD_LENGTH, UserService } from '../admin/users.js';
import type { Store } from '../store/store.js';
import { cliActor, withCliContext } from './context.js';
import { formatTable } from './table.js';
import { CliError, EXIT, type CliCommand, type CliIO } from './types.js';

/** Accounts, API keys, sessions and the audit export from the command line. Every change is audited as `cli:<os user>`. */

/** Every option of these commands takes a string value. */
export function parse(
  args: string[],
  names: string[],
  usage: string,
): { values: Record<string, string | undefined>; positionals: string[] } {
  const options = Object.fromEntries(names.map((n) => [n, { type: 'string' as const }]));
  try {
    const { values, positionals } = parseArgs({ args, options, allowPositionals: true, strict: true });
    return { values: values, positionals };
  } catch (err) {
    throw new CliError(`${(err as Error).message}\nusage: ${usage}`, EXIT.unusable);
  }
}

/** Reads a line from the terminal without echoing it. */
export async function promptHidden(io: CliIO, question: string): Promise<string> {
  const stdin = process.stdin;
  if (!stdin.isTTY)
    throw new CliError(
      'no terminal to ask for the password: set MAILGATE_ADMIN_PASSWORD in the environment',
      EXIT.unusable,
    );
  io.stderr.write(question);
  stdin.setRawMode(true);
  stdin.resume();
  stdin.setEncoding('utf8');
  return new Promise((resolve, reject) => {
    let value = '';
    const onData = (chunk: string) => {
      for (const ch of chunk) {
        if (ch === '\r' || ch === '\n') {
          done();
          resolve(value);
          return;
        }
        if (ch === '\u0003') {
          done();
          reject(new CliError('interrupted', EXIT.interrupted));
          return;
        }
        if (ch === '\u007f' || ch === '\b') value = value.slice(0, -1);
        else value += ch;
      }
    };
    const done = () => {
      stdin.off('data', onData);
      stdin.setRawMode(false);
      stdin.pause();
      io.stderr.write('\n');
    };
    stdin.on('data', onData);
  });
}

async function promptLine(io: CliIO, question: string): Promise<string> {
  const { createInterface } = await import('node:readline/promises');
  if (!process.stdin.isTTY) throw new CliError('no terminal to ask: pass --email', EXIT.unusable);
  const rl = createInterface({ input: process.stdin, output: io.stderr });
  try {
    return (await rl.question(question)).trim();
  } finally {
    rl.close();
  }
}

const createAdmin: CliCommand = {
  name: 'create-admin',
  summary: 'create an admin account (asks for the password, or reads MAILGATE_ADMIN_PASSWORD)',
  usage:
    'mailgate create-admin [--email <address>] [--role sysadmin|admin]\nThe password is never taken from the command line: it is asked for without echo, or read from MAILGATE_ADMIN_PASSWORD.',
  async run(args, io) {
    const { values } = parse(
      args,
      ['email', 'role'],
      'mailgate create-admin [--email <address>] [--role sysadmin|admin]',
    );
    const role = values.role ?? 'sysadmin';
    if (role !== 'sysadmin' && role !== 'admin') throw new CliError('--role must be sysadmin or admin', EXIT.unusable);
    const email = values.email ?? io.env.MAILGATE_ADMIN_EMAIL ?? (await promptLine(io, 'Email: '));
    if (!/^[^\s@]+@[^\s@]+$/.test(email)) throw new CliError(`"${email}" is not an email address`, EXIT.unusable);
    let password = io.env.MAILGATE_ADMIN_PASSWORD;
    if (!password) {
      password = await promptHidden(io, `Password (at least ${MIN_PASSWORD_LENGTH} characters): `);
      if ((await promptHidden(io, 'Repeat the password: ')) !== password)
        throw new CliError('the passwords differ; nothing was created', EXIT.failed);
    }
    if (password.length < MIN_PASSWORD_LENGTH)
      throw new CliError(
        `the password must be at least ${MIN_PASSWORD_LENGTH} characters; nothing was created`,
        EXIT.failed,
      );
    const pw = password;
    // The config demands MAILGATE_ADMIN_EMAIL and _PASSWORD together; this command takes either alone.
    const { MAILGATE_ADMIN_EMAIL: _e, MAILGATE_ADMIN_PASSWORD: _p, ...env } = io.env;
    return withCliContext({ ...io, env }, async ({ store }) => {
      const user = await new UserService(store).create({ email, password: pw, role });
      await new AuditLog(store).record({
        actor: cliActor(),
        action: 'user.create',
        target: `user:${user.email}`,
        outcome: 'success',
        detail: { role: user.role },
      });
      io.stdout.write(`Created ${user.role} ${user.email}. Log in at /login.\n`);
      return EXIT.ok;
    });
  },
};

const SCOPES: readonly ApiScope[] = ['send', 'admin'];

/** The API key service as the running service builds it: it audits every change itself. */
function apiKeysOf(store: Store): ApiKeyService {
  return new ApiKeyService(store, new AuditLog(store));
}

const apiKeysCreate: CliCommand = {
  name: 'api-keys create',
  summary: 'create an API key and print it once',
  usage: 'mailgate api-keys create --name <name> --scopes send,admin',
  async run(args, io) {
    const { values } = parse(args, ['name', 'scopes'], this.usage!);
    const name = values.name?.trim();
    if (!name || name.length > 100) throw new CliError('--name is required (at most 100 characters)', EXIT.unusable);
    const scopes = String(values.scopes ?? '')
      .split(',')
      .map((s) => s.trim())
      .filter(Boolean);
    if (scopes.length === 0 || scopes.some((s) => !SCOPES.includes(s as ApiScope)))
      throw new CliError('--scopes must list send and/or admin, e.g. --scopes send', EXIT.unusable);
    return withCliContext(io, async ({ store }) => {
      const actor = cliActor();
      const created = await apiKeysOf(store).create({ name, scopes: scopes as ApiScope[], actor });
      io.stderr.write(
        `Created API key ${created.id} (${created.scopes.join(', ')}). It is shown only once; store it now:\n`,
      );
      io.stdout.write(`${created.key}\n`);
      return EXIT.ok;
    });
  },
};

const apiKeysList: CliCommand = {
  name: 'api-keys list',
  summary: 'list API keys (never the keys themselves)',
  usage: 'mailgate api-keys list',
  async run(args, io) {
    parse(args, [], this.usage!);
    return withCliContext(io, async ({ store }) => {
      const keys = await apiKeysOf(store).list();
      const rows = keys.map((k) => [
        k.id,
        k.name,
        `${k.prefix}…`,
        k.scopes.join(','),
        k.status + (k.status === 'expiring' ? ` until ${k.expiresAt}` : ''),
        k.createdAt,
        k.lastUsedAt ?? 'never',
      ]);
      io.stdout.write(formatTable(['ID', 'NAME', 'KEY', 'SCOPES', 'STATUS', 'CREATED', 'LAST USED'], rows));
      return EXIT.ok;
    });
  },
};

const apiKeysRevoke: CliCommand = {
  name: 'api-keys revoke',
  summary: 'revoke an API key at once, on every instance',
  usage: 'mailgate api-keys revoke <id>',
  async run(args, io) {
    const { positionals } = parse(args, [], this.usage!);
    const id = positionals[0];
    if (!id || positionals.length > 1) throw new CliError(`usage: ${this.usage}`, EXIT.unusable);
    return withCliContext(io, async ({ store }) => {
      const actor = cliActor();
      const key = await apiKeysOf(store).revoke(id, actor);
      io.stdout.write(`Revoked ${key.id} (${key.name}, ${key.prefix}…).\n`);
      return EXIT.ok;
    });
  },
};

const apiKeysRotate: CliCommand = {
  name: 'api-keys rotate',
  summary: 'create a successor key; the old one keeps working for a grace period, then stops',
  usage: 'mailgate api-keys rotate <id> [--grace-hours 24]   (0 = the old key stops now; at most 720)',
  async run(args, io) {
    const { values, positionals } = parse(args, ['grace-hours'], this.usage!);
    const id = positionals[0];
    if (!id || positionals.length > 1) throw new CliError(`usage: ${this.usage}`, EXIT.unusable);
    const hours = Number(values['grace-hours'] ?? '24');
    if (!Number.isInteger(hours) || hours < 0 || hours > 720)
      throw new CliError('--grace-hours must be a whole number from 0 to 720', EXIT.unusable);
    return withCliContext(io, async ({ store }) => {
      const actor = cliActor();
      const { successor, previous } = await apiKeysOf(store).rotate(id, hours * 3600, actor);
      io.stderr.write(
        `Created ${successor.id} to replace ${id}, which stops at ${previous.expiresAt}. The new key is shown only once; store it now:\n`,
      );
      io.stdout.write(`${successor.key}\n`);
      return EXIT.ok;
    });
  },
};

const sessionsRevokeAll: CliCommand = {
  name: 'sessions revoke-all',
  summary: 'log out every browser session on every instance',
  usage: 'mailgate sessions revoke-all',
  async run(args, io) {
    parse(args, [], this.usage!);
    return withCliContext(io, async ({ store }) => {
      await new SessionGeneration(store, new AuditLog(store)).revokeAll(cliActor());
      io.stdout.write('Every session is logged out; admins must log in again.\n');
      return EXIT.ok;
    });
  },
};

const auditExport: CliCommand = {
  name: 'audit export',
  summary: 'write audit entries since a date as JSON lines (for a SIEM), filtered like the audit page',
  usage:
    'mailgate audit export --since <ISO date, e.g. 2026-01-31 or 2026-01-31T12:00:00Z> [--until <ISO date>] [--actor <text>] [--action <action or prefix>]',
  async run(args, io) {
    const { values } = parse(args, ['since', 'until', 'actor', 'action'], this.usage!);
    const date = (text: string | undefined) => {
      const d = text && /^\d{4}-\d{2}-\d{2}/.test(text) ? new Date(text) : null;
      return d && !Number.isNaN(d.getTime()) ? d : null;
    };
    const since = date(values.since);
    if (!since) throw new CliError(`--since needs an ISO date\nusage: ${this.usage}`, EXIT.unusable);
    const until = values.until === undefined ? undefined : date(values.until);
    if (until === null) throw new CliError(`--until needs an ISO date\nusage: ${this.usage}`, EXIT.unusable);
    return withCliContext(io, async ({ store }) => {
      let count = 0;
      const filter = { from: since, to: until, actor: values.actor, action: values.action };
      for await (const entry of new AuditLog(store).exportFiltered(filter)) {
        io.stdout.write(`${JSON.stringify(entry)}\n`);
        count++;
      }
      io.stderr.write(`${count} entr${count === 1 ? 'y' : 'ies'} since ${since.toISOString()}\n`);
      return EXIT.ok;
    });
  },
};

export const adminCommands: CliCommand[] = [
  createAdmin,
  apiKeysCreate,
  apiKeysList,
  apiKeysRevoke,
  apiKeysRotate,
  sessionsRevokeAll,
  auditExport,
];
