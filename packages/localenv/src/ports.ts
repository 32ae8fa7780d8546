import { createSocket } from 'node:dgram';
import { closeSync, mkdirSync, openSync, readFileSync, statSync, unlinkSync, writeSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/**
 * A port is picked some time before it is bound (a server is started with it). Two things can
 * take it in between, and both happened in parallel test runs:
 * - the kernel: a bind to port 0 or an outgoing connection gets a port of the ephemeral range
 *   (net.ipv4.ip_local_port_range). So ports are picked below that range, where the kernel
 *   never hands one out by itself;
 * - another freePort caller (another test file, another petrel dev): each pick is reserved by
 *   a file named after the port, created exclusively, that holds until its process ends.
 */
const RANGE_SIZE = 10_000;
/** A reservation outlives its process only if the pid was reused; this bounds that case. */
const MAX_RESERVATION_MS = 6 * 60 * 60 * 1000;

export interface FreePortOptions {
  /** Where the reservations are kept (tests); by default one directory per user in the temp dir. */
  readonly reservations?: string;
  /** The ports to pick from, inclusive (tests); by default up to 10000 outside the ephemeral range. */
  readonly range?: readonly [number, number];
}

/**
 * Returns a loopback port that is free for both TCP and UDP on `host` and reserved for this
 * process: no other freePort caller gets it while this process lives.
 */
export async function freePort(host = '127.0.0.1', options: FreePortOptions = {}): Promise<number> {
  const dir = options.reservations ?? join(tmpdir(), `petrel-ports-${process.getuid?.() ?? 'user'}`);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const [low, high] = options.range ?? pickRange();
  const span = high - low + 1;
  const start = Math.floor(Math.random() * span);
  for (let i = 0; i < span; i++) {
    const port = low + ((start + i) % span);
    if (!reserve(dir, port)) continue;
    if (await bindable(host, port)) return port;
    // In use by something that is not a freePort caller: leave the reservation, it stays taken.
  }
  throw new Error(`no free port in ${low}-${high} on ${host}`);
}

/** Fewer free ports than this outside the ephemeral range, and it is not worth keeping out of. */
const MIN_ROOM = 1_000;

/** The ports to pick from, given the kernel's ephemeral range. */
export function rangeOutside([ephemeralLow, ephemeralHigh]: readonly [number, number]): [number, number] {
  if (ephemeralLow - 1024 >= MIN_ROOM) return [Math.max(1024, ephemeralLow - RANGE_SIZE), ephemeralLow - 1];
  if (65535 - ephemeralHigh >= MIN_ROOM)
    return [ephemeralHigh + 1, Math.min(65535, ephemeralHigh + RANGE_SIZE)];
  // A range tuned to cover (nearly) every port: the reservations still keep freePort callers apart.
  return [1024, 65535];
}

function pickRange(): [number, number] {
  let ephemeral: [number, number] = [32768, 60999]; // Linux's default
  try {
    const [low, high] = readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8')
      .trim()
      .split(/\s+/)
      .map(Number);
    if (Number.isInteger(low) && Number.isInteger(high)) ephemeral = [low as number, high as number];
  } catch {
    // Not Linux: the common default.
  }
  return rangeOutside(ephemeral);
}

/** Creates `<dir>/<port>` holding our pid, or takes it over from a process that is gone. */
function reserve(dir: string, port: number): boolean {
  const file = join(dir, String(port));
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const fd = openSync(file, 'wx', 0o600);
      writeSync(fd, String(process.pid));
      closeSync(fd);
      return true;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    }
    if (!stale(file)) return false;
    try {
      unlinkSync(file);
    } catch {
      // Another process took it over first: its exclusive create decides.
    }
  }
  return false;
}

function stale(file: string): boolean {
  try {
    const pid = Number(readFileSync(file, 'utf8'));
    if (Date.now() - statSync(file).mtimeMs > MAX_RESERVATION_MS) return true;
    // A file still being written (empty) belongs to a live process.
    if (!Number.isInteger(pid) || pid <= 0) return false;
    if (pid === process.pid) return false;
    process.kill(pid, 0);
    return false;
  } catch (error) {
    return (
      (error as NodeJS.ErrnoException).code === 'ESRCH' || (error as NodeJS.ErrnoException).code === 'ENOENT'
    );
  }
}

async function bindable(host: string, port: number): Promise<boolean> {
  const tcp = await new Promise<boolean>((resolve) => {
    const server = createServer();
    server.unref();
    server.once('error', () => resolve(false));
    server.listen({ host, port, exclusive: true }, () => server.close(() => resolve(true)));
  });
  if (!tcp) return false;
  return await new Promise<boolean>((resolve) => {
    const socket = createSocket(host.includes(':') ? 'udp6' : 'udp4');
    socket.unref();
    socket.once('error', () => resolve(false));
    socket.bind({ address: host, port, exclusive: true }, () => socket.close(() => resolve(true)));
  });
}
