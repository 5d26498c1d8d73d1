import { readFileSync } from 'node:fs';
import { z } from 'zod';
import { emailAddress, headerText } from '../compose.js';
import type { SmtpServerDoc } from './model.js';
import { checkServer, hostName } from './validation.js';

/**
 * Servers defined in MAILGATE_SMTP_SERVERS_FILE: shown read-only, their secrets by reference (an environment
 * variable or a secret file), kept in memory only.
 */

const fileServer = z.strictObject({
  id: z.string().regex(/^[A-Za-z0-9_-]{1,64}$/, 'expected 1-64 of A-Z a-z 0-9 _ -'),
  name: z.string().min(1).max(100),
  description: z.string().max(500).nullable().optional(),
  fromAddress: emailAddress,
  emailPrefix: headerText(60, 'emailPrefix').nullable().optional(),
  protocol: z.enum(['smtp', 'smtps', 'graph', 'gmail_api']).default('smtp'),
  // Not used by graph and gmail_api (checkServer requires it for SMTP).
  host: hostName.optional(),
  port: z.number().int().min(1).max(65535).nullable().optional(),
  timeoutMs: z.number().int().max(3_600_000).nullable().optional(),
  rateLimitPerMinute: z.number().int().min(1).max(100_000).nullable().optional(),
  tls: z.boolean().default(false),
  authMethod: z.enum(['none', 'basic', 'oauth2']).default('none'),
  oauthIntegrationId: z.string().nullable().optional(),
  username: z.string().max(254).nullable().optional(),
  sendAs: z.array(emailAddress).max(50).optional(),
  passwordEnv: z
    .string()
    .regex(/^[A-Za-z_][A-Za-z0-9_]*$/)
    .optional(),
  passwordFile: z.string().min(1).optional(),
  isDefault: z.boolean().optional(),
});
const serversFile = z.union([z.array(fileServer), z.strictObject({ servers: z.array(fileServer) })]);

export interface FileDefined {
  doc: SmtpServerDoc;
  /** Plaintext, kept in memory only (it came from the environment or a secret file). */
  password: string | null;
  isDefault: boolean;
}

/** Reads MAILGATE_SMTP_SERVERS_FILE; every problem is reported at once. */
export function loadServersFile(
  file: string,
  env: Readonly<Record<string, string | undefined>> = process.env,
): Map<string, FileDefined> {
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(file, 'utf8'));
  } catch (err) {
    throw new Error(`MAILGATE_SMTP_SERVERS_FILE: cannot read ${file} as JSON (${(err as Error).message})`, {
      cause: err,
    });
  }
  const parsed = serversFile.safeParse(raw);
  if (!parsed.success) {
    throw new Error(
      `MAILGATE_SMTP_SERVERS_FILE ${file}:\n${parsed.error.issues.map((i) => `  - ${i.path.join('.')}: ${i.message}`).join('\n')}`,
    );
  }
  const list = Array.isArray(parsed.data) ? parsed.data : parsed.data.servers;
  const out = new Map<string, FileDefined>();
  const problems: string[] = [];
  for (const s of list) {
    if (out.has(s.id)) problems.push(`server "${s.id}" appears twice`);
    let password: string | null = null;
    if (s.passwordEnv && s.passwordFile) problems.push(`server "${s.id}": give passwordEnv or passwordFile, not both`);
    else if (s.passwordEnv) {
      password = env[s.passwordEnv] ?? null;
      if (!password) problems.push(`server "${s.id}": environment variable ${s.passwordEnv} is not set`);
    } else if (s.passwordFile) {
      try {
        password = readFileSync(s.passwordFile, 'utf8').replace(/\r?\n$/, '');
      } catch (err) {
        problems.push(`server "${s.id}": cannot read passwordFile (${(err as NodeJS.ErrnoException).code ?? 'error'})`);
      }
    }
    const doc: SmtpServerDoc = {
      name: s.name,
      description: s.description ?? null,
      fromAddress: s.fromAddress,
      emailPrefix: s.emailPrefix ?? null,
      serviceProvider: 'custom',
      protocol: s.protocol,
      host: s.host ?? '',
      port: s.port ?? null,
      timeoutMs: s.timeoutMs ?? null,
      rateLimitPerMinute: s.rateLimitPerMinute ?? null,
      tls: s.tls,
      authMethod: s.authMethod,
      oauthIntegrationId: s.oauthIntegrationId ?? null,
      username: s.username ?? null,
      sendAs: s.sendAs ?? [],
      password: null,
      passwordVersion: 1,
      createdAt: new Date(0).toISOString(),
      updatedAt: new Date(0).toISOString(),
    };
    try {
      checkServer({ ...doc, password });
    } catch (err) {
      problems.push(`server "${s.id}": ${(err as Error).message}`);
    }
    out.set(s.id, { doc, password, isDefault: s.isDefault ?? false });
  }
  if (problems.length)
    throw new Error(`MAILGATE_SMTP_SERVERS_FILE ${file}:\n${problems.map((p) => `  - ${p}`).join('\n')}`);
  return out;
}
