import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { createLogger, redact } from './log.js';

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
    log.info({ server: { password: canaries.password, nested: [{ clientSecret: canaries.clientSecret }] }, body: { refresh_token: canaries.refresh_token } }, 'saved');
    log.info({ header: `Bearer ${canaries.refresh_token}`, note: `key ${canaries.apiKey}`, value: canaries.sealed }, 'shapes');
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
