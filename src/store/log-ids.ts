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
