import { diagnose } from '../diagnose.js';
import type { ResolvedServer } from '../servers.js';
import type { MailTransport } from '../transport.js';
import type { TestConnectionResult } from '../verify.js';

/**
 * Test connection of a Graph or Gmail API server: a token from the token service, then a harmless read of the
 * mailbox where the granted permissions allow it. The transcript says what was checked and what was not: a
 * send-only permission (Mail.Send, gmail.send) cannot read a profile, and no message is sent.
 */
export async function testApiConnection(
  transport: MailTransport,
  server: ResolvedServer,
): Promise<TestConnectionResult> {
  const transcript: string[] = [
    `* ${server.protocol === 'graph' ? 'Microsoft Graph' : 'Gmail API'} (auth ${server.authMethod})`,
  ];
  const checked: string[] = [];
  const started = performance.now();
  const result = await transport.verify(server, (line, direction) => {
    if (line.startsWith('access token obtained') && !checked.includes('access token')) checked.push('access token');
    if (line.startsWith('checked: ')) checked.push('mailbox');
    transcript.push(`${direction === 'client' ? 'C:' : direction === 'server' ? 'S:' : '*'} ${line}`);
  });
  const durationMs = Math.round(performance.now() - started);
  if (result.ok) {
    const summary = `Succeeded: ${checked.join(', ')} checked in ${durationMs} ms${checked.includes('mailbox') ? '' : ' (the mailbox could not be read with the granted permissions)'}.`;
    transcript.push(`* ${summary}`);
    return { ok: true, durationMs, summary, transcript };
  }
  const d = diagnose(result.error, { protocol: server.protocol });
  transcript.push(`* failed: ${d.message}`);
  return {
    ok: false,
    durationMs,
    summary: `Failed after ${durationMs} ms: ${d.code}.`,
    transcript,
    error: d.message,
    code: d.code,
    hint: d.hint,
  };
}
