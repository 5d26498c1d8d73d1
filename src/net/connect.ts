import dns from 'node:dns';
import net from 'node:net';
import { egressDenied, type EgressPolicy } from './egress.js';

/**
 * The connect-time half of the egress policy: a `lookup` for net.connect and http.request that resolves the
 * name and hands the socket only addresses the policy allows, so the address checked is the address
 * connected to (no window for DNS rebinding between a check and the connection).
 */

export type ResolveAll = (
  hostname: string,
  callback: (err: NodeJS.ErrnoException | null, addresses: dns.LookupAddress[]) => void,
) => void;

export interface EgressGuard {
  policy: EgressPolicy;
  /** DNS resolution; tests inject answers here. */
  resolve: ResolveAll;
}

export const systemResolve: ResolveAll = (hostname, callback) =>
  dns.lookup(hostname, { all: true, verbatim: true }, callback);

type LookupCallback = (
  err: NodeJS.ErrnoException | null,
  address: string | dns.LookupAddress[],
  family?: number,
) => void;

/** A `lookup` option that answers only with allowed addresses, or fails with the egress_denied AppError. */
export function checkedLookup(guard: EgressGuard, host: string): net.LookupFunction {
  const lookup = (hostname: string, options: dns.LookupOptions, callback: LookupCallback) => {
    guard.resolve(hostname, (err, addresses) => {
      if (err) return callback(err, '', 0);
      const family = options.family === 4 || options.family === 6 ? options.family : 0;
      const candidates = addresses.filter((a) => family === 0 || a.family === family);
      const allowed = candidates.filter((a) => guard.policy.check(host, a.address).allowed);
      const first = allowed[0];
      if (!first) {
        const refused = candidates[0];
        if (!refused) return callback(Object.assign(new Error(`no address for ${host}`), { code: 'ENOTFOUND' }), '', 0);
        const verdict = guard.policy.check(host, refused.address);
        return callback(
          verdict.allowed ? new Error('unreachable') : egressDenied(host, refused.address, verdict),
          '',
          0,
        );
      }
      if (options.all) callback(null, allowed);
      else callback(null, first.address, first.family);
    });
  };
  return lookup;
}

/** The verdict for a host before any connection: metadata names, and IP literals (which skip `lookup`). */
export function refusalBeforeConnect(guard: EgressGuard, host: string): Error | null {
  const bare = host.replace(/^\[|\]$/g, '');
  const byName = guard.policy.checkName(bare);
  if (!byName.allowed) return egressDenied(bare, null, byName);
  if (net.isIP(bare) === 0) return null;
  const verdict = guard.policy.check(bare, bare);
  return verdict.allowed ? null : egressDenied(bare, bare, verdict);
}

/** Opens a TCP connection under the policy; rejects with egress_denied, the socket's error or a timeout. */
export function connectChecked(
  guard: EgressGuard,
  target: { host: string; port: number; timeoutMs: number },
): Promise<net.Socket> {
  const refusal = refusalBeforeConnect(guard, target.host);
  if (refusal) return Promise.reject(refusal);
  const host = target.host.replace(/^\[|\]$/g, '');
  return new Promise((resolve, reject) => {
    const socket = net.connect({
      host,
      port: target.port,
      ...(net.isIP(host) === 0 ? { lookup: checkedLookup(guard, host) } : {}),
    });
    const timer = setTimeout(() => {
      socket.destroy();
      reject(Object.assign(new Error('Connection timeout'), { code: 'ETIMEDOUT', timeoutType: 'CONNECT_TIMEOUT' }));
    }, target.timeoutMs);
    let connected = false;
    socket.once('connect', () => {
      connected = true;
      clearTimeout(timer);
      resolve(socket);
    });
    // Before the connection: the caller's error. After it, the caller listens on the socket (or on the TLS
    // socket wrapped around it, which reports the same failure); a late error of the plain socket under TLS
    // would otherwise have no listener left and end the process.
    socket.on('error', (err) => {
      if (connected) return;
      clearTimeout(timer);
      socket.destroy();
      reject(err);
    });
  });
}
