import http from 'node:http';
import https from 'node:https';
import { checkedLookup, refusalBeforeConnect, type EgressGuard } from './connect.js';

/**
 * A `fetch` for requests to admin-entered URLs (custom OAuth endpoints): node's http(s) client with the
 * egress `lookup`, so the policy judges the address each connection really goes to. It covers what OAuth
 * needs: string, URLSearchParams or byte bodies, a signal, and no redirect following (the OAuth library asks
 * for `redirect: 'manual'` and handles redirects itself, i.e. refuses them).
 */

/** Discovery documents and token responses are small; a larger answer is not an OAuth server's. */
const MAX_RESPONSE_BYTES = 1024 * 1024;

function bodyOf(body: RequestInit['body']): string | Buffer | undefined {
  if (body === undefined || body === null) return undefined;
  if (typeof body === 'string') return body;
  if (body instanceof URLSearchParams) return body.toString();
  if (body instanceof ArrayBuffer) return Buffer.from(body);
  if (ArrayBuffer.isView(body)) return Buffer.from(body.buffer, body.byteOffset, body.byteLength);
  throw new TypeError('unsupported request body for an egress-checked request');
}

export function createEgressFetch(guard: EgressGuard): typeof fetch {
  const egressFetch = (input: string | URL | Request, init: RequestInit = {}): Promise<Response> => {
    const url = new URL(input instanceof Request ? input.url : input.toString());
    if (url.protocol !== 'http:' && url.protocol !== 'https:')
      return Promise.reject(new TypeError(`only http and https URLs can be fetched, not ${url.protocol}`));
    const host = url.hostname.replace(/^\[|\]$/g, '');
    const refusal = refusalBeforeConnect(guard, host);
    if (refusal) return Promise.reject(refusal);
    const signal = init.signal ?? undefined;
    if (signal?.aborted) return Promise.reject(signal.reason as Error);
    const headers = new Headers(init.headers);
    const body = bodyOf(init.body);
    if (init.body instanceof URLSearchParams && !headers.has('content-type'))
      headers.set('content-type', 'application/x-www-form-urlencoded;charset=UTF-8');
    const method = (init.method ?? 'GET').toUpperCase();
    return new Promise<Response>((resolve, reject) => {
      const client = url.protocol === 'https:' ? https : http;
      const request = client.request(
        url,
        { method, headers: Object.fromEntries(headers), lookup: checkedLookup(guard, host), agent: false },
        (response) => {
          const chunks: Buffer[] = [];
          let size = 0;
          response.on('data', (chunk: Buffer) => {
            size += chunk.length;
            if (size > MAX_RESPONSE_BYTES) {
              request.destroy(new Error(`response larger than ${MAX_RESPONSE_BYTES} bytes`));
              return;
            }
            chunks.push(chunk);
          });
          response.on('error', reject);
          response.on('end', () => {
            signal?.removeEventListener('abort', onAbort);
            const status = response.statusCode ?? 502;
            const responseHeaders = new Headers();
            for (let i = 0; i + 1 < response.rawHeaders.length; i += 2)
              responseHeaders.append(response.rawHeaders[i]!, response.rawHeaders[i + 1]!);
            const noBody = method === 'HEAD' || status === 204 || status === 205 || status === 304;
            resolve(
              new Response(noBody ? null : Buffer.concat(chunks), {
                status: status < 200 ? 502 : status,
                statusText: response.statusMessage ?? '',
                headers: responseHeaders,
              }),
            );
          });
        },
      );
      // Abort with the signal's own reason (a TimeoutError for AbortSignal.timeout), as fetch does.
      const onAbort = () => {
        request.destroy();
        reject(signal?.reason as Error);
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      request.on('error', (err) => {
        signal?.removeEventListener('abort', onAbort);
        reject(err);
      });
      request.end(body);
    });
  };
  return egressFetch;
}
