import { mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from './config.js';

const key = (fill: number) => Buffer.alloc(32, fill).toString('base64');

function problemsOf(env: Record<string, string>): readonly string[] {
  try {
    loadConfig(env);
  } catch (err) {
    if (err instanceof ConfigError) return err.problems;
    throw err;
  }
  return [];
}

describe('loadConfig', () => {
  it('comes up with no variables at all on the embedded defaults', () => {
    const config = loadConfig({});
    expect(config.PORT).toBe(3000);
    expect(config.MAILGATE_BASE_URL).toBe('http://localhost:3000');
    expect(config.REDIS_URL).toBeUndefined();
    expect(config.encryptionKeys).toBeUndefined();
    expect(path.isAbsolute(config.MAILGATE_DATA_DIR)).toBe(true);
    expect(Object.isFrozen(config)).toBe(true);
  });

  it('syncs the embedded store and leases claims for 20 s unless told otherwise; names a bad value', () => {
    const config = loadConfig({});
    expect(config.MAILGATE_FSYNC).toBe('always');
    expect(config.MAILGATE_QUEUE_LEASE_MS).toBe(20_000);
    expect(loadConfig({ MAILGATE_FSYNC: 'off' }).MAILGATE_FSYNC).toBe('off');
    const problems = problemsOf({ MAILGATE_FSYNC: 'sometimes', MAILGATE_QUEUE_LEASE_MS: '10' }).join('\n');
    expect(problems).toMatch(/MAILGATE_FSYNC: expected always or off \(got "sometimes"\)/);
    expect(problems).toMatch(/MAILGATE_QUEUE_LEASE_MS/);
  });

  it('lists every bad variable at once', () => {
    const problems = problemsOf({
      PORT: 'eighty',
      MAILGATE_BASE_URL: 'ftp://x',
      MAILGATE_SEND_DISABLED: 'maybe',
      REDIS_URL: 'redis://localhost:6379',
    });
    expect(problems.join('\n')).toMatch(/PORT/);
    expect(problems.join('\n')).toMatch(/MAILGATE_BASE_URL/);
    expect(problems.join('\n')).toMatch(/MAILGATE_SEND_DISABLED/);
    expect(problems.join('\n')).toMatch(/MAILGATE_ENCRYPTION_KEYS: required when REDIS_URL/);
    expect(problems.join('\n')).toMatch(/MAILGATE_SESSION_SECRETS: required when REDIS_URL/);
  });

  it('takes MAILGATE_REDIS_MODE single (default) or cluster, the latter only with REDIS_URL', () => {
    expect(loadConfig({}).MAILGATE_REDIS_MODE).toBe('single');
    expect(problemsOf({ MAILGATE_REDIS_MODE: 'sharded' }).join('\n')).toMatch(
      /MAILGATE_REDIS_MODE: expected single or cluster/,
    );
    expect(problemsOf({ MAILGATE_REDIS_MODE: 'cluster' }).join('\n')).toMatch(
      /MAILGATE_REDIS_MODE: cluster needs REDIS_URL/,
    );
  });

  it('refuses a From display-name format with an address-like character', () => {
    for (const format of ['{name} <alerts@example.com>', '"{name}"', '{name} at example@corp']) {
      expect(problemsOf({ MAILGATE_FROM_FORMAT: format }).join('\n'), format).toMatch(
        /MAILGATE_FROM_FORMAT: must not contain <, >, @ or "/,
      );
    }
    expect(loadConfig({ MAILGATE_FROM_FORMAT: '{name} via mailgate' }).MAILGATE_FROM_FORMAT).toBe(
      '{name} via mailgate',
    );
  });

  it('reports each problem of a malformed key list', () => {
    const problems = problemsOf({
      MAILGATE_ENCRYPTION_KEYS: `a:${key(1)},a:${key(2)},b:${Buffer.alloc(16).toString('base64')},c:not*base64,nokey`,
    });
    expect(problems).toEqual([
      expect.stringMatching(/entry 2: key id "a" appears more than once/),
      expect.stringMatching(/entry 3 \(b\): key is 16 bytes, expected 32/),
      expect.stringMatching(/entry 4 \(c\): key is not valid base64/),
      expect.stringMatching(/entry 5: expected kid:base64/),
    ]);
  });

  it('parses keys, first one active', () => {
    const config = loadConfig({ MAILGATE_ENCRYPTION_KEYS: `new:${key(1)}, old:${key(2)}` });
    expect(config.encryptionKeys?.map((k) => k.id)).toEqual(['new', 'old']);
  });

  it('reads *_FILE secrets and refuses both forms at once', () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'mg-config-'));
    const file = path.join(dir, 'pw');
    writeFileSync(file, 'a-long-admin-password\n');
    const config = loadConfig({ MAILGATE_ADMIN_EMAIL: 'root@example.com', MAILGATE_ADMIN_PASSWORD_FILE: file });
    expect(config.MAILGATE_ADMIN_PASSWORD).toBe('a-long-admin-password');
    expect(
      problemsOf({
        MAILGATE_ADMIN_EMAIL: 'root@example.com',
        MAILGATE_ADMIN_PASSWORD: 'x'.repeat(12),
        MAILGATE_ADMIN_PASSWORD_FILE: file,
      }),
    ).toEqual([expect.stringMatching(/MAILGATE_ADMIN_PASSWORD and MAILGATE_ADMIN_PASSWORD_FILE are both set/)]);
  });

  it('reads MAILGATE_METRICS_TOKEN from a file and refuses a short one without echoing it', () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'mg-config-'));
    const file = path.join(dir, 'metrics');
    writeFileSync(file, 'a-metrics-token-of-32-characters\n');
    expect(loadConfig({ MAILGATE_METRICS_TOKEN_FILE: file }).MAILGATE_METRICS_TOKEN).toBe(
      'a-metrics-token-of-32-characters',
    );
    const problems = problemsOf({ MAILGATE_METRICS_TOKEN: 'short-canary' });
    expect(problems).toEqual([expect.stringMatching(/^MAILGATE_METRICS_TOKEN: expected at least 16 characters/)]);
    expect(problems.join('\n')).not.toContain('short-canary');
  });

  it('never echoes a secret value in a problem', () => {
    const problems = problemsOf({ MAILGATE_ADMIN_EMAIL: 'root@example.com', MAILGATE_ADMIN_PASSWORD: 'canary7' });
    expect(problems.join('\n')).toMatch(/MAILGATE_ADMIN_PASSWORD/);
    expect(problems.join('\n')).not.toContain('canary7');
  });

  it('refuses a plain-http base URL and insecure OAuth in production, listing both with the other problems', () => {
    const problems = problemsOf({
      NODE_ENV: 'production',
      MAILGATE_BASE_URL: 'http://mail.example.com',
      MAILGATE_ALLOW_INSECURE_OAUTH: 'true',
      PORT: 'eighty',
    });
    expect(problems).toEqual([
      expect.stringMatching(/^PORT:/),
      expect.stringMatching(/^MAILGATE_BASE_URL: plain http is refused with NODE_ENV=production/),
      expect.stringMatching(/^MAILGATE_ALLOW_INSECURE_OAUTH: refused with NODE_ENV=production/),
    ]);
  });

  it('accepts https and a loopback http base URL in production, and plain http outside it', () => {
    expect(
      loadConfig({ NODE_ENV: 'production', MAILGATE_BASE_URL: 'https://mail.example.com' }).MAILGATE_BASE_URL,
    ).toBe('https://mail.example.com');
    for (const local of [
      'http://localhost:3000',
      'http://127.0.0.1:8080',
      'http://[::1]:3000',
      'http://mailgate.localhost',
    ]) {
      expect(problemsOf({ NODE_ENV: 'production', MAILGATE_BASE_URL: local }), local).toEqual([]);
    }
    expect(problemsOf({ NODE_ENV: 'production' })).toEqual([]);
    expect(problemsOf({ NODE_ENV: 'production', MAILGATE_ALLOW_INSECURE_OAUTH: 'false' })).toEqual([]);
    expect(
      problemsOf({
        NODE_ENV: 'development',
        MAILGATE_BASE_URL: 'http://mail.example.com',
        MAILGATE_ALLOW_INSECURE_OAUTH: 'true',
      }),
    ).toEqual([]);
  });

  it('parses MAILGATE_EGRESS_ALLOW and names every bad entry', () => {
    expect(
      loadConfig({ MAILGATE_EGRESS_ALLOW: ' relay.corp.example, 10.20.0.0/16,::1 ,' }).MAILGATE_EGRESS_ALLOW,
    ).toEqual(['relay.corp.example', '10.20.0.0/16', '::1']);
    expect(loadConfig({}).MAILGATE_EGRESS_ALLOW).toEqual([]);
    const problems = problemsOf({ MAILGATE_EGRESS_ALLOW: '10.0.0.0/33,smtp://relay,relay.ok', PORT: 'x' });
    expect(problems).toEqual([
      expect.stringMatching(/^PORT:/),
      expect.stringMatching(/^MAILGATE_EGRESS_ALLOW: "10.0.0.0\/33": the prefix length must be 0-32/),
      expect.stringMatching(
        /^MAILGATE_EGRESS_ALLOW: "smtp:\/\/relay": expected a host name, an IP address or a CIDR, not a URL/,
      ),
    ]);
  });
});
