#!/usr/bin/env node
// Plain JavaScript so that an old Node gets a clear message instead of a syntax error.
const major = Number(process.versions.node.split('.')[0]);
if (major < 24) {
  process.stderr.write(
    `petrel needs Node 24 or later (this is ${process.version}). From the repository root run ` +
      '`bash scripts/start.sh` (it brings Node 24), or run `npx petrel` after `npm ci`, which installs it.\n',
  );
  process.exit(1);
}
await import('../src/main.ts');
