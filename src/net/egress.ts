import net from 'node:net';
import { egressEntryProblem } from '../config.js';
import { AppError, isAppError } from '../errors.js';

/**
 * The egress policy: which addresses endpoints typed in by admins (SMTP hosts, custom OAuth endpoints) may
 * reach. It is applied to the address a connection actually goes to, after DNS, so a name that resolves to
 * an internal address (or starts to, DNS rebinding) is refused like the address itself.
 *
 * - Link-local and cloud metadata addresses and names are never reached, whatever the allow list says:
 *   they hand out instance credentials.
 * - Loopback and private ranges are refused in production unless MAILGATE_EGRESS_ALLOW lists the host name,
 *   the address or a CIDR holding it; in development and tests they are allowed (local relays, fakes).
 * - Everything else (public addresses) is allowed.
 */

export type EgressVerdict =
  { allowed: true } | { allowed: false; reason: 'metadata' | 'link_local' | 'reserved' | 'loopback' | 'private' };

export type EgressRefusal = Exclude<EgressVerdict, { allowed: true }>;

export interface EgressPolicy {
  /** Whether a connection to `address` (what `host` resolved to, or `host` itself when it is an IP) may be made. */
  check(host: string, address: string): EgressVerdict;
  /** Whether the host name alone is refused before any DNS query (cloud metadata names). */
  checkName(host: string): EgressVerdict;
}

export interface EgressPolicyOptions {
  /** NODE_ENV=production: loopback and private ranges need the allow list. */
  production: boolean;
  /** MAILGATE_EGRESS_ALLOW entries: host names, IP addresses and CIDRs. */
  allow: readonly string[];
}

/** Instance metadata services of the large clouds; most sit in link-local space, some do not. */
const METADATA_ADDRESSES = [
  '169.254.169.254',
  '169.254.170.2',
  '100.100.100.200',
  '192.0.0.192',
  '168.63.129.16',
  'fd00:ec2::254',
];
const METADATA_NAMES = new Set([
  'metadata.google.internal',
  'metadata.goog',
  'metadata',
  'instance-data',
  'instance-data.ec2.internal',
  'metadata.azure.internal',
]);

type Subnet = [address: string, prefix: number, family: 'ipv4' | 'ipv6'];

const LINK_LOCAL: Subnet[] = [
  ['169.254.0.0', 16, 'ipv4'],
  ['fe80::', 10, 'ipv6'],
];
/** Where no mail or identity server lives: "this network", multicast, reserved and broadcast. */
const RESERVED: Subnet[] = [
  ['0.0.0.0', 8, 'ipv4'],
  ['224.0.0.0', 4, 'ipv4'],
  ['240.0.0.0', 4, 'ipv4'],
  ['::', 128, 'ipv6'],
  ['ff00::', 8, 'ipv6'],
];
const LOOPBACK: Subnet[] = [
  ['127.0.0.0', 8, 'ipv4'],
  ['::1', 128, 'ipv6'],
];
const PRIVATE: Subnet[] = [
  ['10.0.0.0', 8, 'ipv4'],
  ['172.16.0.0', 12, 'ipv4'],
  ['192.168.0.0', 16, 'ipv4'],
  ['100.64.0.0', 10, 'ipv4'], // carrier-grade NAT, also used inside clouds
  ['198.18.0.0', 15, 'ipv4'],
  ['fc00::', 7, 'ipv6'],
];

function blockList(subnets: Subnet[], addresses: string[] = []): net.BlockList {
  const list = new net.BlockList();
  for (const [address, prefix, family] of subnets) list.addSubnet(address, prefix, family);
  for (const address of addresses) list.addAddress(address, net.isIPv6(address) ? 'ipv6' : 'ipv4');
  return list;
}

/** Sixteen bytes of an IPv6 address, or null when it is not one. */
function ipv6Bytes(address: string): number[] | null {
  if (!net.isIPv6(address)) return null;
  let text = address;
  const tail: number[] = [];
  const dotted = /(\d+\.\d+\.\d+\.\d+)$/.exec(text);
  if (dotted) {
    tail.push(...dotted[1]!.split('.').map(Number));
    text = `${text.slice(0, -dotted[1]!.length)}0:0`;
  }
  const [head = '', rest] = text.split('::');
  const groupsOf = (s: string) => (s === '' ? [] : s.split(':').map((g) => parseInt(g, 16)));
  const left = groupsOf(head);
  const right = rest === undefined ? [] : groupsOf(rest);
  const groups = [...left, ...new Array<number>(8 - left.length - right.length).fill(0), ...right];
  const bytes = groups.flatMap((g) => [g >> 8, g & 0xff]);
  if (tail.length === 4) bytes.splice(12, 4, ...tail);
  return bytes;
}

/**
 * The IPv4 address an IPv6 address stands for, when it embeds one: IPv4-mapped (::ffff:a.b.c.d, which the
 * kernel connects to a.b.c.d) and the NAT64 well-known prefix (64:ff9b::a.b.c.d). Otherwise the address, with
 * any zone id removed.
 */
export function normalizeAddress(address: string): string {
  const plain = address.replace(/^\[|\]$/g, '').replace(/%.*$/, '');
  const bytes = ipv6Bytes(plain);
  if (!bytes) return plain;
  const zeros = (from: number, to: number) => bytes.slice(from, to).every((b) => b === 0);
  const mapped = zeros(0, 10) && bytes[10] === 0xff && bytes[11] === 0xff;
  const nat64 = bytes[0] === 0x00 && bytes[1] === 0x64 && bytes[2] === 0xff && bytes[3] === 0x9b && zeros(4, 12);
  return mapped || nat64 ? bytes.slice(12).join('.') : plain.toLowerCase();
}

function normalizeName(host: string): string {
  return host
    .trim()
    .toLowerCase()
    .replace(/^\[|\]$/g, '')
    .replace(/\.$/, '');
}

export function createEgressPolicy(options: EgressPolicyOptions): EgressPolicy {
  const metadata = blockList([], METADATA_ADDRESSES);
  const linkLocal = blockList(LINK_LOCAL);
  const reserved = blockList(RESERVED);
  const loopback = blockList(LOOPBACK);
  const privateRanges = blockList(PRIVATE);
  const allowedNames = new Set<string>();
  const allowedAddresses = new net.BlockList();
  for (const raw of options.allow) {
    const entry = raw.trim();
    if (entry === '' || egressEntryProblem(entry) !== null) continue;
    const slash = entry.indexOf('/');
    if (slash >= 0) {
      const address = normalizeAddress(entry.slice(0, slash));
      allowedAddresses.addSubnet(address, Number(entry.slice(slash + 1)), net.isIPv6(address) ? 'ipv6' : 'ipv4');
    } else if (net.isIP(entry.replace(/^\[|\]$/g, '')) !== 0) {
      const address = normalizeAddress(entry);
      allowedAddresses.addAddress(address, net.isIPv6(address) ? 'ipv6' : 'ipv4');
    } else {
      allowedNames.add(normalizeName(entry));
    }
  }

  function checkName(host: string): EgressVerdict {
    return METADATA_NAMES.has(normalizeName(host)) ? { allowed: false, reason: 'metadata' } : { allowed: true };
  }

  return {
    checkName,
    check(host, rawAddress) {
      const byName = checkName(host);
      if (!byName.allowed) return byName;
      const address = normalizeAddress(rawAddress);
      const family = net.isIPv6(address) ? 'ipv6' : net.isIPv4(address) ? 'ipv4' : null;
      if (!family) return { allowed: false, reason: 'reserved' };
      if (metadata.check(address, family)) return { allowed: false, reason: 'metadata' };
      if (linkLocal.check(address, family)) return { allowed: false, reason: 'link_local' };
      if (reserved.check(address, family)) return { allowed: false, reason: 'reserved' };
      const internal = loopback.check(address, family)
        ? 'loopback'
        : privateRanges.check(address, family)
          ? 'private'
          : null;
      if (!internal || !options.production) return { allowed: true };
      if (allowedNames.has(normalizeName(host)) || allowedAddresses.check(address, family)) return { allowed: true };
      return { allowed: false, reason: internal };
    },
  };
}

const REASONS: Record<EgressRefusal['reason'], string> = {
  metadata: 'a cloud metadata service, which mailgate never contacts',
  link_local: 'a link-local address, which mailgate never contacts',
  reserved: 'a reserved or multicast address',
  loopback: 'a loopback address, refused in production unless MAILGATE_EGRESS_ALLOW lists it',
  private: 'a private-network address, refused in production unless MAILGATE_EGRESS_ALLOW lists it',
};

export type EgressDeniedError = AppError & { hint: string; reason: EgressRefusal['reason'] };

/** The refusal as the caller sees it: which host, which address, why, and what an operator can do. */
export function egressDenied(host: string, address: string | null, verdict: EgressRefusal): EgressDeniedError {
  const target = address && address !== host ? `${host} (${address})` : host;
  const fixable = verdict.reason === 'loopback' || verdict.reason === 'private';
  const hint = fixable
    ? `If this endpoint is meant to be internal, the operator can add the host name, the address or its network (CIDR) to MAILGATE_EGRESS_ALLOW.`
    : 'Use the public address of the server. MAILGATE_EGRESS_ALLOW cannot open link-local, metadata or reserved addresses.';
  const error = new AppError('egress_denied', {
    message: `Connection to ${target} refused: it is ${REASONS[verdict.reason]}.`,
  });
  return Object.assign(error, { hint, reason: verdict.reason });
}

/** The egress refusal somewhere in an error's cause chain (libraries wrap what a socket or fetch threw). */
export function findEgressDenial(err: unknown): EgressDeniedError | undefined {
  let current: unknown = err;
  for (let depth = 0; depth < 5 && current; depth++) {
    if (isAppError(current) && current.code === 'egress_denied') return current as EgressDeniedError;
    current = (current as { cause?: unknown }).cause;
  }
  return undefined;
}
