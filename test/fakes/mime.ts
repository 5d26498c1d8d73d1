/**
 * A small MIME reader for tests: enough to take apart what nodemailer writes (multipart nesting, base64 and
 * quoted-printable bodies, folded headers) and compare attachments byte for byte. Not a general parser.
 */

export interface MimePart {
  /** Header names lower-cased, values unfolded (the first occurrence). */
  headers: Map<string, string>;
  /** Content type without parameters, lower-cased. */
  type: string;
  /** Decoded body of a leaf part. */
  body: Buffer;
  parts: MimePart[];
}

function param(value: string, name: string): string | undefined {
  const m = new RegExp(`${name}\\*?=("([^"]*)"|[^;\\s]+)`, 'i').exec(value);
  return m ? (m[2] ?? m[1]) : undefined;
}

function decode(body: string, encoding: string): Buffer {
  switch (encoding.toLowerCase()) {
    case 'base64':
      return Buffer.from(body.replace(/\s+/g, ''), 'base64');
    case 'quoted-printable': {
      const soft = body.replace(/=\r?\n/g, '');
      const bytes: number[] = [];
      for (let i = 0; i < soft.length; i++) {
        if (soft[i] === '=' && /^[0-9A-Fa-f]{2}$/.test(soft.slice(i + 1, i + 3))) {
          bytes.push(parseInt(soft.slice(i + 1, i + 3), 16));
          i += 2;
        } else bytes.push(soft.charCodeAt(i));
      }
      return Buffer.from(bytes);
    }
    default:
      return Buffer.from(body, 'latin1');
  }
}

export function parseMime(raw: string): MimePart {
  const split = raw.search(/\r?\n\r?\n/);
  const head = split < 0 ? raw : raw.slice(0, split);
  const rest = split < 0 ? '' : raw.slice(split).replace(/^\r?\n\r?\n/, '');
  const headers = new Map<string, string>();
  for (const line of head.replace(/\r?\n[ \t]+/g, ' ').split(/\r?\n/)) {
    const colon = line.indexOf(':');
    if (colon <= 0) continue;
    const name = line.slice(0, colon).trim().toLowerCase();
    if (!headers.has(name)) headers.set(name, line.slice(colon + 1).trim());
  }
  const contentType = headers.get('content-type') ?? 'text/plain';
  const type = contentType.split(';')[0]!.trim().toLowerCase();
  const part: MimePart = { headers, type, body: Buffer.alloc(0), parts: [] };
  const boundary = type.startsWith('multipart/') ? param(contentType, 'boundary') : undefined;
  if (!boundary) {
    part.body = decode(rest, headers.get('content-transfer-encoding') ?? '7bit');
    return part;
  }
  const chunks = rest.split(new RegExp(`\\r?\\n?--${boundary.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}`));
  for (const chunk of chunks.slice(1)) {
    if (chunk.startsWith('--')) break;
    part.parts.push(parseMime(chunk.replace(/^[ \t]*\r?\n/, '')));
  }
  return part;
}

/** Every leaf part, depth first, with the content types of the multiparts above it. */
export function leaves(part: MimePart, parents: string[] = []): { part: MimePart; parents: string[] }[] {
  if (part.parts.length === 0) return [{ part, parents }];
  return part.parts.flatMap((p) => leaves(p, [...parents, part.type]));
}

/** The file name of a part (Content-Disposition or Content-Type name), undone from RFC 2231 / encoded words. */
export function filenameOf(part: MimePart): string | undefined {
  const disposition = part.headers.get('content-disposition') ?? '';
  // RFC 2231 continuations: filename*0*=utf-8''a%20b; filename*1*=c
  const pieces = [...disposition.matchAll(/filename\*(\d+)\*?=("([^"]*)"|[^;\s]+)/gi)].map((m) => m[3] ?? m[2]!);
  if (pieces.length > 0) {
    const joined = pieces.join('');
    const rfc2231 = /^utf-8''(.*)$/i.exec(joined);
    return rfc2231 ? decodeURIComponent(rfc2231[1]!) : joined;
  }
  const raw = param(disposition, 'filename') ?? param(part.headers.get('content-type') ?? '', 'name');
  if (raw === undefined) return undefined;
  const rfc2231 = /^utf-8''(.*)$/i.exec(raw);
  if (rfc2231) return decodeURIComponent(rfc2231[1]!);
  const b = /^=\?utf-8\?B\?(.*)\?=$/i.exec(raw);
  if (b) return Buffer.from(b[1]!, 'base64').toString('utf8');
  const q = /^=\?utf-8\?Q\?(.*)\?=$/i.exec(raw);
  if (q) return decodeURIComponent(q[1]!.replace(/_/g, ' ').replace(/=([0-9A-F]{2})/gi, '%$1'));
  return raw;
}
