/** Name rules and id order shared by both backends, so both refuse and sort exactly alike. */

const COLLECTION_NAME = /^[a-z0-9_-]+$/;

export function isCollectionName(name: string): boolean {
  return COLLECTION_NAME.test(name);
}

export function checkCollection(collection: string): void {
  if (!isCollectionName(collection)) throw new Error(`invalid collection name "${collection}" (expected [a-z0-9_-]+)`);
}

export function checkName(kind: string, name: string): void {
  if (name.length === 0 || name.includes('\0')) throw new Error(`invalid ${kind} "${name}"`);
}

/** By UTF-16 code units, as JavaScript sorts strings (Redis sorts bytes; its results are sorted again). */
export function compareIds(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** The first index in sorted `items` whose item is not below `target`. */
export function lowerBound<T>(items: readonly T[], target: T, compare: (a: T, b: T) => number): number {
  let lo = 0;
  let hi = items.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (compare(items[mid]!, target) < 0) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}
