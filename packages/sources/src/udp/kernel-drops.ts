import { readdirSync, readFileSync, readlinkSync } from 'node:fs';

/**
 * Datagrams the kernel dropped for our own UDP sockets (receive buffer full), read from the
 * `drops` column of /proc/net/udp and /proc/net/udp6 for the socket inodes this process (or
 * the process `pid`: the benchmarks read a daemon's) holds on `port`. Those datagrams never
 * reached Sluice, so they are not in the received count: what peers sent = received + kernel
 * drops. 0 where /proc is not Linux's.
 */
export function udpKernelDrops(port: number, pid: number | 'self' = 'self'): number {
  let inodes: Set<string>;
  try {
    inodes = socketInodes(pid);
  } catch {
    return 0;
  }
  let drops = 0;
  for (const file of ['/proc/net/udp', '/proc/net/udp6']) {
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch {
      continue;
    }
    const lines = text.split('\n');
    for (let i = 1; i < lines.length; i++) {
      const cols = lines[i]!.trim().split(/\s+/);
      // sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode ref pointer drops
      if (cols.length < 13) continue;
      const local = cols[1]!;
      const localPort = parseInt(local.slice(local.lastIndexOf(':') + 1), 16);
      if (localPort !== port || !inodes.has(cols[9]!)) continue;
      drops += Number(cols[12]);
    }
  }
  return drops;
}

function socketInodes(pid: number | 'self'): Set<string> {
  const inodes = new Set<string>();
  for (const fd of readdirSync(`/proc/${pid}/fd`)) {
    let target: string;
    try {
      target = readlinkSync(`/proc/${pid}/fd/${fd}`);
    } catch {
      continue; // closed between readdir and readlink
    }
    if (target.startsWith('socket:[')) inodes.add(target.slice(8, -1));
  }
  return inodes;
}
