import { createHmac } from 'node:crypto';
import type { NotifyEvent } from './model.js';

/**
 * Webhook deliveries: the body is the event as JSON, signed `Mailgate-Signature: t=<unix>,v1=<hex HMAC-SHA256
 * of "<t>.<body>">`, so a receiver can check it came from mailgate and is recent. Redirects are never
 * followed (a 3xx is a failed delivery): a receiver cannot bounce the signed body to another host.
 */

export const SIGNATURE_HEADER = 'Mailgate-Signature';

export function signBody(secret: string, body: string, unixSeconds: number): string {
  const mac = createHmac('sha256', secret).update(`${unixSeconds}.${body}`).digest('hex');
  return `t=${unixSeconds},v1=${mac}`;
}

export interface WebhookTarget {
  url: string;
  secret: string;
}

/** One signed POST; resolves when the receiver answered 2xx, rejects with a short reason otherwise. */
export async function postWebhook(
  fetchFn: typeof fetch,
  target: WebhookTarget,
  event: NotifyEvent,
  options: { nowSeconds: number; timeoutMs: number },
): Promise<void> {
  const body = JSON.stringify(event);
  let res: Response;
  try {
    res = await fetchFn(target.url, {
      method: 'POST',
      body,
      redirect: 'manual',
      headers: {
        'content-type': 'application/json',
        'user-agent': 'mailgate-notifications',
        [SIGNATURE_HEADER]: signBody(target.secret, body, options.nowSeconds),
      },
      signal: AbortSignal.timeout(options.timeoutMs),
    });
  } catch (err) {
    const e = err as Error;
    if (e.name === 'TimeoutError' || e.name === 'AbortError')
      throw new Error(`no answer within ${options.timeoutMs} ms`, { cause: err });
    throw new Error(`cannot reach the receiver: ${e.message}`.slice(0, 300), { cause: err });
  }
  await res.arrayBuffer().catch(() => undefined);
  if (res.status >= 300 && res.status < 400) throw new Error(`HTTP ${res.status}: redirects are not followed`);
  if (res.status < 200 || res.status >= 300) throw new Error(`HTTP ${res.status}`);
}
