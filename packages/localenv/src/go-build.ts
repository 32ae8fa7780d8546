import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, rename, rm } from 'node:fs/promises';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

/** Where binaries built for Petrel are cached, by version. */
export function cacheDir(): string {
  return process.env['PETREL_CACHE_DIR'] ?? join(homedir(), '.cache', 'petrel');
}

export interface GoBuildOptions {
  /** Where the finished build lives: it appears whole (a renamed staging directory) or not at all. */
  dir: string;
  /** What is built, for the progress line, e.g. "nats-server v2.12.15". */
  what: string;
  /** About how long it takes, for the progress line. */
  takes: string;
  /** Runs the `go` commands; everything they write goes into `staging`. */
  build(staging: string): Promise<void>;
  /** Whether `dir` holds a complete build (a concurrent build may have finished first). */
  complete(): Promise<boolean>;
  /** The caller's error, naming its own way out, when Go is missing or the build fails. */
  error(kind: 'no-go' | 'failed', cause: unknown): Error;
  log?: (line: string) => void;
}

/**
 * Builds with Go into a staging directory beside `dir`, then renames it into place, so concurrent
 * callers (test files starting at once) never see half a build; a build that loses the race to
 * another one that completed is not an error. Go's module and build caches stay for next time.
 */
export async function buildWithGo(options: GoBuildOptions): Promise<void> {
  let goVersion: string;
  try {
    goVersion = (await run('go', ['version'], { timeout: 30_000 })).stdout.trim();
  } catch (error) {
    throw options.error('no-go', error);
  }
  options.log?.(`building ${options.what} with ${goVersion} into ${options.dir} (${options.takes})`);
  const parent = dirname(options.dir);
  await mkdir(parent, { recursive: true });
  const staging = await mkdtemp(join(parent, '.build-'));
  try {
    await options.build(staging);
    try {
      await rename(staging, options.dir);
    } catch {
      // Something is there already: a build that won the race (kept: callers may be using it),
      // or a partial one left by a crash (replaced).
      if (await options.complete()) return;
      await rm(options.dir, { recursive: true, force: true });
      await rename(staging, options.dir);
    }
  } catch (error) {
    if (await options.complete()) return;
    throw options.error('failed', error);
  } finally {
    await rm(staging, { recursive: true, force: true });
  }
}
