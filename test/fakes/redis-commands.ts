/**
 * Commands a Redis server has executed, from INFO commandstats: every `cmdstat_*` line counts the commands run
 * by clients and those run inside Lua scripts alike, so the sum over a phase divided by its messages is what a
 * message costs the Redis a fleet shares.
 */
import net from 'node:net';

/** A section of INFO, read over a plain connection (RESP inline command). */
async function info(url: string, section: string): Promise<string> {
  const { hostname, port } = new URL(url);
  return new Promise<string>((resolve, reject) => {
    const socket = net.connect(Number(port || 6379), hostname);
    let buffer = '';
    socket.setEncoding('utf8');
    socket.on('error', reject);
    socket.on('connect', () => socket.write(`INFO ${section}\r\n`));
    socket.on('data', (chunk: string) => {
      buffer += chunk;
      // A bulk string: `$<length>\r\n<payload>\r\n`.
      const header = buffer.indexOf('\r\n');
      if (header < 0) return;
      const length = Number(buffer.slice(1, header));
      if (Buffer.byteLength(buffer) >= header + 2 + length + 2) {
        socket.end();
        resolve(buffer.slice(header + 2));
      }
    });
  });
}

/** Calls per command name (`evalsha`, `hset`, …). */
export async function commandStats(url: string): Promise<Map<string, number>> {
  const text = await info(url, 'commandstats');
  const calls = new Map<string, number>();
  for (const m of text.matchAll(/^cmdstat_([^:]+):calls=(\d+)/gm)) calls.set(m[1]!, Number(m[2]));
  return calls;
}

/** The calls made between two readings, per command, most frequent first. */
export function commandsBetween(before: Map<string, number>, after: Map<string, number>): [string, number][] {
  const out: [string, number][] = [];
  for (const [name, calls] of after) {
    const delta = calls - (before.get(name) ?? 0);
    if (delta > 0) out.push([name, delta]);
  }
  return out.sort((a, b) => b[1] - a[1]);
}

/** Bytes the server has sent to its clients so far (INFO stats): what reading a page costs the network. */
export async function bytesSent(url: string): Promise<number> {
  return Number(/^total_net_output_bytes:(\d+)/m.exec(await info(url, 'stats'))?.[1] ?? NaN);
}
