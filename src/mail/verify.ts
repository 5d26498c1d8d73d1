import { diagnose, isSmtpGreeting } from './diagnose.js';
import type { ComposedMessage } from './compose.js';
import type { MailTransport } from './transport.js';
import { isApiProtocol, type ResolvedServer } from './servers.js';
import { testApiConnection } from './transports/verify-api.js';

/**
 * Test connection: one fresh connection (greeting, EHLO, STARTTLS or implicit TLS, AUTH), the conversation as
 * readable lines with every credential masked, how long it took, and on failure a hint from diagnose().
 */

export interface TestConnectionResult {
  ok: boolean;
  durationMs: number;
  /** One line for people: what was checked and how it went. */
  summary: string;
  transcript: string[];
  error?: string;
  code?: string;
  hint?: string;
  responseCode?: number;
}

const MAX_LINES = 200;

export async function testConnection(transport: MailTransport, server: ResolvedServer): Promise<TestConnectionResult> {
  if (isApiProtocol(server.protocol)) return testApiConnection(transport, server);
  const transcript: string[] = [
    `* connecting to ${server.host}:${server.port} (${server.protocol}${server.tls ? ', STARTTLS required' : ''}, auth ${server.authMethod})`,
  ];
  const started = performance.now();
  let connected = false;
  let serverSpoke = false;
  // Decided by the first line the peer sends: anything but an SMTP greeting means another protocol, and from then
  // on nothing it sent is shown (neither its lines nor errors quoting them).
  let peer: 'unknown' | 'smtp' | 'not_smtp' = 'unknown';
  const result = await transport.verify(server, (line, direction) => {
    if (direction === 'server') {
      serverSpoke = true;
      if (peer === 'unknown') {
        peer = isSmtpGreeting(line) ? 'smtp' : 'not_smtp';
        if (peer === 'not_smtp') transcript.push('* the peer is not an SMTP server: what it sent is not shown');
      }
    }
    if (direction === 'info' && /^Connection established/.test(line)) connected = true;
    if (peer === 'not_smtp' || transcript.length >= MAX_LINES) return;
    transcript.push(`${direction === 'client' ? 'C:' : direction === 'server' ? 'S:' : '*'} ${line}`);
  });
  const durationMs = Math.round(performance.now() - started);
  if (result.ok) {
    const steps = [
      'connected',
      ...(server.protocol === 'smtps' || server.tls ? ['TLS'] : []),
      ...(server.authMethod !== 'none' ? [`authenticated (${server.authMethod})`] : []),
    ];
    const summary = `Succeeded: ${steps.join(', ')} in ${durationMs} ms.`;
    transcript.push(`* ${summary}`);
    return { ok: true, durationMs, summary, transcript };
  }
  const d = diagnose(result.error, {
    host: server.host,
    port: server.port,
    protocol: server.protocol,
    tls: server.tls,
    noGreeting: connected && !serverSpoke,
  });
  transcript.push(`* failed: ${d.message}`);
  return {
    ok: false,
    durationMs,
    summary: `Failed after ${durationMs} ms: ${d.code}.`,
    transcript,
    error: d.message,
    code: d.code,
    hint: d.hint,
    ...(d.responseCode !== undefined ? { responseCode: d.responseCode } : {}),
  };
}

export interface TestEmailResult {
  ok: boolean;
  durationMs: number;
  messageId?: string;
  error?: string;
  code?: string;
  hint?: string;
  responseCode?: number;
}

/**
 * Send test email: one message through a server that may be unsaved. It runs under the server's own (test) id, so
 * no live pool is touched, and that pool is closed right after.
 */
export async function sendTestEmail(
  transport: MailTransport,
  server: ResolvedServer,
  message: ComposedMessage,
): Promise<TestEmailResult> {
  const started = performance.now();
  try {
    const sent = await transport.send(server, message);
    return { ok: true, durationMs: Math.round(performance.now() - started), messageId: sent.messageId };
  } catch (error) {
    const d = diagnose(error, { host: server.host, port: server.port, protocol: server.protocol, tls: server.tls });
    return {
      ok: false,
      durationMs: Math.round(performance.now() - started),
      error: d.message,
      code: d.code,
      hint: d.hint,
      ...(d.responseCode !== undefined ? { responseCode: d.responseCode } : {}),
    };
  } finally {
    transport.invalidate(server.id);
  }
}
