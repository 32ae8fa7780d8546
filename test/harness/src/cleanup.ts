import { rmSync } from 'node:fs';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/**
 * Everything a test started that must not outlive it: process groups and temporary
 * directories. Removed when the test process exits, also on SIGINT/SIGTERM or a failed test;
 * tests normally clean up earlier through their own `t.after` hooks.
 */
const dirs = new Set<string>();
const groups = new Set<number>();
let installed = false;

function install(): void {
  if (installed) return;
  installed = true;
  process.on('exit', () => {
    for (const pgid of groups) {
      try {
        process.kill(-pgid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
    if (process.env['PETREL_KEEP_TEST_DIRS']) return;
    for (const dir of dirs) {
      try {
        rmSync(dir, { recursive: true, force: true, maxRetries: 3 });
      } catch {
        // A server still writing its files; the other directories are still removed.
      }
    }
  });
  // Without handlers these signals end the process without running 'exit' hooks.
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.once(signal, () => process.exit(130));
  }
}

/** A fresh temporary directory, removed at exit (keep with PETREL_KEEP_TEST_DIRS=1). */
export async function tempDir(prefix: string): Promise<string> {
  install();
  const dir = await mkdtemp(join(tmpdir(), `petrel-${prefix}-`));
  dirs.add(dir);
  return dir;
}

export function removeDirLater(dir: string): void {
  install();
  dirs.add(dir);
}

/** A process group (detached child) that is SIGKILLed at exit if still alive. */
export function trackProcessGroup(pgid: number): void {
  install();
  groups.add(pgid);
}

export function untrackProcessGroup(pgid: number): void {
  groups.delete(pgid);
}
