import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { createLogger, readableLine, redact } from './log.js';

function capture(): { lines: string[]; stream: Writable } {
  const lines: string[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, cb) {
      lines.push(chunk.toString());
      cb();
    },
  });
  return { lines, stream };
}

describe('logger redaction', () => {
  const canaries = {
    password: 'CANARY-pw-111',
    clientSecret: 'CANARY-cs-222',
    refresh_token: 'CANARY-rt-333',
    apiKey: 'mgk_CANARYCANARYCANARYCANARYCANARYCANARY0000000',
    sealed: 'mg1.k1.aaaaaaaaaaaaaaaa.CANARYct.bbbbbbbbbbbbbbbbbbbbbb',
  };

  it('masks secrets by key name at any depth and by value shape anywhere', () => {
    const { lines, stream } = capture();
    const log = createLogger({ level: 'info', destination: stream });
    log.info(
      {
        server: { password: canaries.password, nested: [{ clientSecret: canaries.clientSecret }] },
        body: { refresh_token: canaries.refresh_token },
      },
      'saved',
    );
    log.info(
      { header: `Bearer ${canaries.refresh_token}`, note: `key ${canaries.apiKey}`, value: canaries.sealed },
      'shapes',
    );
    log.warn(`interpolated ${canaries.apiKey} and Bearer abc.def`);
    log.error({ err: new Error(`failed with ${canaries.apiKey}`) }, 'boom');
    const all = lines.join('\n');
    expect(lines).toHaveLength(4);
    for (const canary of Object.values(canaries)) expect(all).not.toContain(canary);
    expect(all).toContain('[redacted]');
    expect(JSON.parse(lines[0]!).msg).toBe('saved');
  });

  it('keeps ordinary values and booleans about secrets', () => {
    expect(redact({ host: 'smtp.example.com', port: 587, changePassword: true, hasPassword: false })).toEqual({
      host: 'smtp.example.com',
      port: 587,
      changePassword: true,
      hasPassword: false,
    });
  });
});

describe('codes', () => {
  it('keeps error codes, which are not secrets, and still masks authorization codes', () => {
    for (const code of ['auth_failed', 'invalid_grant', 'ETIMEDOUT', 'ERR_TLS_CERT_ALTNAME_INVALID', 'E_LOOKUP', 535])
      expect(redact({ code })).toEqual({ code });
    for (const code of [
      'SplxlOBeZQQYbYS6WxSbIA',
      '4/0AeaYSHBx_fake-google-code',
      'M.C507_BAY.2.U.0a1b2c3d-4e5f',
      'd3b07384d113edec49eaa6238ad5ff00',
      'abcdefghijklmnopqrstuvwxyz',
      12345678,
    ])
      expect(redact({ code })).toEqual({ code: '[redacted]' });
    expect(redact({ query: { code: 'SplxlOBeZQQYbYS6WxSbIA', state: 'x' } })).toEqual({
      query: { code: '[redacted]', state: 'x' },
    });
  });
});

describe('error logs', () => {
  it('keep the stack of an error, its type and code, with secrets masked in the message and the stack', () => {
    const { lines, stream } = capture();
    const log = createLogger({ level: 'info', destination: stream });
    const apiKey = 'mgk_CANARYCANARYCANARYCANARYCANARYCANARY1111111';
    const err = Object.assign(new TypeError(`lookup failed for ${apiKey}`), { code: 'E_LOOKUP' });
    log.error({ err }, 'request failed');
    log.error(new Error('boom'));
    expect(lines).toHaveLength(2);
    const first = JSON.parse(lines[0]!) as { err: { type: string; message: string; stack: string; code: string } };
    expect(first.err.type).toBe('TypeError');
    expect(first.err.code).toBe('E_LOOKUP');
    expect(first.err.message).toBe('lookup failed for [redacted]');
    expect(first.err.stack).toMatch(/^TypeError: lookup failed for \[redacted\]\n\s+at /);
    expect(first.err.stack).toContain('log.test.ts');
    expect(lines[0]).not.toContain(apiKey);
    const second = JSON.parse(lines[1]!) as { msg: string; err: { type: string; stack: string } };
    expect(second.msg).toBe('boom');
    expect(second.err.type).toBe('Error');
    expect(second.err.stack).toMatch(/^Error: boom\n\s+at /);
  });

  it('keeps the cause of an error, redacted, with its own stack', () => {
    const { lines, stream } = capture();
    const log = createLogger({ level: 'info', destination: stream });
    const cause = new Error('token Bearer abc.def refused');
    log.error({ err: new Error('refresh failed', { cause }) }, 'refresh');
    const line = JSON.parse(lines[0]!) as { err: { message: string; cause: { message: string; stack: string } } };
    expect(line.err.message).toBe('refresh failed');
    expect(line.err.cause.message).toBe('token [redacted] refused');
    expect(line.err.cause.stack).toMatch(/^Error: token \[redacted\] refused\n\s+at /);
  });
});

describe('readable lines for a terminal', () => {
  it('shows time, level, message and fields, then the stack of an error, from the redacted JSON line', () => {
    const json = JSON.stringify({
      level: 'error',
      time: '2026-11-02T09:30:01.250Z',
      service: 'mailgate',
      msg: 'request failed',
      port: 3000,
      path: '/a b',
      password: '[redacted]',
      err: { type: 'Error', message: 'boom', stack: 'Error: boom\n    at x', code: 'ECONNREFUSED' },
    });
    expect(readableLine(json, false)).toBe(
      '09:30:01.250 ERROR request failed  port=3000 path="/a b" password=[redacted]\n' +
        '    Error: boom\n        at x [ECONNREFUSED]\n',
    );
    expect(readableLine(json, true)).toContain('\x1b[31mERROR\x1b[0m');
    expect(readableLine('not json', false)).toBe('not json\n');
  });
});
