/**
 * The UTF-8 length of JSON.stringify(value), without building it: for a message with a 25 MB attachment the
 * string would be another 25 MB and about 0.1 s of one synchronous step, only to be measured. A string JSON
 * writes as it is (no quote, backslash, control character or anything beyond ASCII: base64 always) counts its
 * length plus the quotes after one native scan; any other string is measured by stringifying it alone.
 */

// eslint-disable-next-line no-control-regex
const NEEDS_WORK = /["\\\u0000-\u001f\u007f-\uffff]/;

export function jsonByteLength(value: unknown): number {
  if (typeof value === 'string')
    return NEEDS_WORK.test(value) ? Buffer.byteLength(JSON.stringify(value)) : value.length + 2;
  if (value === null || typeof value !== 'object') return Buffer.byteLength(JSON.stringify(value) ?? '');
  const toJSON = (value as { toJSON?: unknown }).toJSON;
  if (typeof toJSON === 'function') return jsonByteLength((toJSON as () => unknown).call(value));
  if (Array.isArray(value)) {
    // Brackets and commas; undefined, functions and symbols in an array are written as null.
    let size = 2 + Math.max(0, value.length - 1);
    for (const item of value) size += isSkipped(item) ? 4 : jsonByteLength(item);
    return size;
  }
  let size = 2;
  let members = 0;
  for (const [key, item] of Object.entries(value)) {
    if (isSkipped(item)) continue;
    size += jsonByteLength(key) + 1 + jsonByteLength(item);
    members++;
  }
  return size + Math.max(0, members - 1);
}

function isSkipped(value: unknown): boolean {
  return value === undefined || typeof value === 'function' || typeof value === 'symbol';
}
