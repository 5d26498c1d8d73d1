import { expect } from 'vitest';
import type { TestApp } from './app.js';

/**
 * Creates the default SMTP server of an app through the API, as an admin would: a basic-auth relay on the test
 * SMTP fake at `port`. Returns the server's id.
 */
export async function addLoopbackRelay(app: TestApp, port: number, password: string): Promise<string> {
  const adminKey = await app.apiKey(['admin']);
  const created = await fetch(`${app.url}/api/v1/smtp-servers`, {
    method: 'POST',
    headers: { authorization: `Bearer ${adminKey}`, 'content-type': 'application/json' },
    body: JSON.stringify({
      name: 'Loopback relay',
      fromAddress: 'notify@example.com',
      host: '127.0.0.1',
      port,
      authMethod: 'basic',
      username: 'relay',
      password,
      isDefault: true,
    }),
  });
  expect(created.status).toBe(201);
  return ((await created.json()) as { id: string }).id;
}
