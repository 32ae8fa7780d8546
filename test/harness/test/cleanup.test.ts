import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { waitFor } from '../src/index.ts';

const FIXTURE = fileURLToPath(new URL('./fixtures/interrupted.ts', import.meta.url));

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  test(`a test process interrupted with ${signal} leaves no server process and no directory behind`, async (t) => {
    const child = spawn(process.execPath, [FIXTURE], { stdio: ['ignore', 'pipe', 'inherit'] });
    t.after(() => {
      if (child.exitCode === null) child.kill('SIGKILL');
    });
    let out = '';
    child.stdout.on('data', (c: Buffer) => {
      out += c.toString();
    });
    const report = await waitFor(
      () => {
        if (child.exitCode !== null) throw new Error(`fixture exited early: ${out}`);
        return out.includes('\n') ? (JSON.parse(out) as { pids: number[]; dirs: string[] }) : undefined;
      },
      // initdb alone may take up to 120 s on a loaded machine (localenv's own limit).
      { timeoutMs: 180_000, message: 'the fixture to start NATS and Postgres' },
    );
    assert.equal(report.pids.length, 2);
    for (const pid of report.pids) assert.ok(alive(pid), `server ${pid} runs before the interruption`);
    for (const dir of report.dirs) assert.ok(existsSync(dir), `${dir} exists before the interruption`);

    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill(signal);
    await exited;
    await waitFor(() => report.pids.every((pid) => !alive(pid)), {
      timeoutMs: 10_000,
      message: 'servers to be gone',
    });
    for (const dir of report.dirs) assert.equal(existsSync(dir), false, `${dir} removed`);
  });
}
