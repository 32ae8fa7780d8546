// Summarises a V8 CPU profile (.cpuprofile, from `node --cpu-prof` or BENCH_CPU_PROFILE): the
// functions with the most self time, the source files (or packages) with the most self time, and
// the functions with the most total time (self + callees), as % of the sampled non-idle time.
// Usage: node bench/cpuprofile-top.ts <file.cpuprofile> [top=25] [filter]
// `filter` keeps only the samples whose stack contains a frame matching it (a function name or a
// path fragment), e.g. "Worker" to see where a component's own call trees spend their time.
// PROFILE_SKIP_S=seconds leaves out the start of the profile (start-up, warm-up), whose samples
// otherwise read as per-message costs.
import { readFile } from 'node:fs/promises';

interface CallFrame {
  functionName: string;
  url: string;
  lineNumber: number;
}
interface ProfileNode {
  id: number;
  callFrame: CallFrame;
  children?: number[];
}
interface Profile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
  startTime: number;
  endTime: number;
}

const [file, topArg, filter] = process.argv.slice(2);
if (file === undefined)
  throw new Error('usage: node bench/cpuprofile-top.ts <file.cpuprofile> [top] [filter]');
const TOP = Number(topArg ?? 25);
const profile = JSON.parse(await readFile(file, 'utf8')) as Profile;

const byId = new Map<number, ProfileNode>();
const parent = new Map<number, number>();
for (const n of profile.nodes) {
  byId.set(n.id, n);
  for (const c of n.children ?? []) parent.set(c, n.id);
}

/** Where a frame comes from: the package under node_modules, the repository path, or node's own. */
function origin(url: string): string {
  if (url === '') return '(native/V8)';
  const nm = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url);
  if (nm?.[1] !== undefined) return nm[1];
  if (url.startsWith('node:')) return url;
  const repo = /\/(packages|services|operator|test)\/(.+)$/.exec(url);
  return repo ? `${repo[1]}/${repo[2]}` : url;
}

function label(f: CallFrame): string {
  const name = f.functionName === '' ? '(anonymous)' : f.functionName;
  return f.url === '' ? name : `${name} ${origin(f.url)}:${f.lineNumber + 1}`;
}

const IDLE = new Set(['(idle)', '(program)']);
const self = new Map<string, number>();
const byOrigin = new Map<string, number>();
const total = new Map<string, number>();
let sampled = 0;
let idle = 0;
let gc = 0;
const { PROFILE_SKIP_S } = process.env;
const skipMicros = Number(PROFILE_SKIP_S ?? 0) * 1e6;
let at = 0;
for (let i = 0; i < profile.samples.length; i++) {
  const id = profile.samples[i] ?? 0;
  const dt = profile.timeDeltas[i + 1] ?? profile.timeDeltas[i] ?? 0;
  at += profile.timeDeltas[i] ?? 0;
  if (at < skipMicros) continue;
  const node = byId.get(id);
  if (node === undefined) continue;
  if (IDLE.has(node.callFrame.functionName)) {
    idle += dt;
    continue;
  }
  const stack: CallFrame[] = [];
  for (let n: ProfileNode | undefined = node; n !== undefined; n = byId.get(parent.get(n.id) ?? -1)) {
    if (n.callFrame.functionName !== '(root)') stack.push(n.callFrame);
  }
  if (filter !== undefined && !stack.some((f) => f.functionName.includes(filter) || f.url.includes(filter))) {
    continue;
  }
  sampled += dt;
  if (node.callFrame.functionName === '(garbage collector)') gc += dt;
  const own = label(node.callFrame);
  self.set(own, (self.get(own) ?? 0) + dt);
  const o = origin(node.callFrame.url);
  byOrigin.set(o, (byOrigin.get(o) ?? 0) + dt);
  for (const l of new Set(stack.map(label))) total.set(l, (total.get(l) ?? 0) + dt);
}

const wall = profile.endTime - profile.startTime;
const pct = (v: number) => `${((v / sampled) * 100).toFixed(1).padStart(5)} %`;
const print = (title: string, map: Map<string, number>) => {
  console.log(`\n${title}`);
  for (const [k, v] of [...map].sort((a, b) => b[1] - a[1]).slice(0, TOP)) {
    console.log(`${pct(v)}  ${(v / 1000).toFixed(0).padStart(7)} ms  ${k}`);
  }
};
console.log(
  `${file}: ${(wall / 1e6).toFixed(1)} s profiled, ${(sampled / 1e6).toFixed(2)} s busy` +
    `${filter === undefined ? '' : ` in stacks matching "${filter}"`}, ${(idle / 1e6).toFixed(2)} s idle; ` +
    `GC ${((gc / Math.max(1, sampled)) * 100).toFixed(1)} % of busy`,
);
print('self time by function', self);
print('self time by file or package', byOrigin);
print('total time (self + callees) by function', total);
