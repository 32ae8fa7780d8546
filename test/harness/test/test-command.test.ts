import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { tempDir } from '../src/index.ts';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const FILES = 8;
const TESTS = 100;

/** The node options of `npm test`: every token before the first test-file glob, without `node`. */
async function testCommandOptions(): Promise<string[]> {
  const pkg = JSON.parse(await readFile(join(ROOT, 'package.json'), 'utf8')) as {
    scripts: Record<string, string>;
  };
  const tokens = (pkg.scripts['test'] ?? '').split(/\s+/);
  assert.equal(tokens[0], 'node', 'npm test runs node');
  const firstGlob = tokens.findIndex((token) => token.startsWith('"'));
  assert.ok(firstGlob > 1, 'npm test names its test files after its options');
  return tokens.slice(1, firstGlob);
}

test('npm test reports every test of every file (force-exit must not drop report frames)', async () => {
  const options = await testCommandOptions();
  assert.ok(options.includes('--test-force-exit'), 'the case this guards');
  // Many verdicts with long names: megabytes through each file's pipe, ended by a forced exit.
  // Without blocking writes, three runs of it out of three lost verdicts, and passed.
  const dir = await tempDir('test-command');
  const files: string[] = [];
  for (let f = 0; f < FILES; f++) {
    const file = join(dir, `f${f}.test.mjs`);
    await writeFile(
      file,
      `import { test } from 'node:test';\nconst name = 'x'.repeat(2000);\n` +
        `for (let i = 0; i < ${TESTS}; i++) test(\`t\${i} \${name}\`, () => {});\n`,
    );
    files.push(file);
  }
  const child = spawn(process.execPath, [...options, '--test-reporter=spec', ...files], {
    cwd: ROOT,
    // Not as a subprocess of this run (which would report to it in its own format): as npm test.
    env: Object.fromEntries(Object.entries(process.env).filter(([key]) => key !== 'NODE_TEST_CONTEXT')),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout.on('data', (chunk: Buffer) => {
    out += chunk.toString('utf8');
  });
  child.stderr.on('data', (chunk: Buffer) => {
    out += chunk.toString('utf8');
  });
  const code = await new Promise<number | null>((resolve) => child.once('close', resolve));
  assert.equal(code, 0, out.slice(-2000));
  const reported = Number(/^ℹ tests (\d+)$/m.exec(out)?.[1]);
  const passed = out.split('\n').filter((line) => line.startsWith('✔ t')).length;
  assert.equal(reported, FILES * TESTS, 'the runner counted every test');
  assert.equal(passed, FILES * TESTS, 'and printed every verdict');
});
