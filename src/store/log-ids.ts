/**
 * Log entry ids shared by both stores: `<ms>-<seq>`, zero-padded (13 + 6 digits) so that plain string
 * comparison orders them by time. The Redis store maps stream ids (`1700000000000-0`) to this form.
 */

const MS_DIGITS = 13;
const SEQ_DIGITS = 6;

export function formatLogId(ms: number, seq: number): string {
  return `${String(ms).padStart(MS_DIGITS, '0')}-${String(seq).padStart(SEQ_DIGITS, '0')}`;
}

/** Parses a log id in either padded or raw stream form; null when it is not one. */
export function parseLogId(id: string): { ms: number; seq: number } | null {
  const match = /^(\d{1,16})-(\d{1,16})$/.exec(id);
  if (!match) return null;
  return { ms: Number(match[1]), seq: Number(match[2]) };
}

/** A Redis stream id → a log id: `1700000000000-3` → `1700000000000-000003`. */
export function logIdOfStreamId(streamId: string): string {
  const parsed = parseLogId(streamId);
  if (!parsed) throw new Error(`unexpected stream id ${streamId}`);
  return formatLogId(parsed.ms, parsed.seq);
}

/** A log id given by a caller → the stream id Redis understands. */
export function streamIdOfLogId(logId: string): string {
  const parsed = parseLogId(logId);
  if (!parsed) throw new Error(`invalid log id "${logId}" (expected <ms>-<seq>)`);
  return `${parsed.ms}-${parsed.seq}`;
}
