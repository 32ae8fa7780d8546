// The DKIM key rotation planner: from a MailDomain's `spec.dkim.generate` settings and the keys
// recorded on its Secrets, what to create, change and delete now. Pure: no clock, no DNS, no
// Kubernetes; the reconciler applies the plan and records the keys' new states.
//
// A key's life: Pending (published, not signing) → Active (signing) → Retiring (published, not
// signing, so that mail signed with it still verifies, RFC 6376 §3.6.1 and M3AAWG's rotation
// advice) → deleted at retireAt. Every selector is used by exactly one key, ever: verifiers and
// DNS caches tie a selector to one public key.
import { normaliseHostName } from '../dns/names.ts';
import { DkimError, DkimErrorCode } from './errors.ts';
import { DKIM_ALGORITHMS, type DkimAlgorithm, isDkimAlgorithm } from './keys.ts';

export const DkimKeyState = {
  /** Published so that DNS can show it before the relay signs with it. */
  Pending: 'Pending',
  /** The relay signs with it. */
  Active: 'Active',
  /** Replaced; still published until retireAt, for mail signed with it that is still on its way. */
  Retiring: 'Retiring',
} as const;
export type DkimKeyState = (typeof DkimKeyState)[keyof typeof DkimKeyState];

/** `spec.dkim.generate` of a MailDomain; durations in milliseconds. */
export interface DkimGenerateSpec {
  algorithms: readonly DkimAlgorithm[];
  /** DNS labels; selectors are `<prefix>-<generation>-<rsa|ed25519>`. */
  selectorPrefix: string;
  /** At least 1. Raising it above the newest generation rotates now. */
  keyGeneration: number;
  /** Rotate this long after the newest generation was created. */
  rotateEvery?: number;
  /** A Pending key signs after this long even when DNS does not (yet) show it. */
  activateAfter?: number;
  /** How long a replaced key stays published. */
  retireAfter: number;
}

/**
 * A generated key as recorded on its Secret (the private key itself is not the planner's
 * business). Times are milliseconds since the epoch, so that the record survives JSON as it is.
 */
export interface DkimKeyRecord {
  generation: number;
  algorithm: DkimAlgorithm;
  selector: string;
  state: DkimKeyState;
  createdAt: number;
  activatedAt?: number;
  retireAt?: number;
}

export interface DkimPlanInput {
  spec: DkimGenerateSpec;
  keys: readonly DkimKeyRecord[];
  /** Milliseconds since the epoch. */
  now: number;
  /**
   * Whether DNS serves the key record of a Pending key's selector as published: true activates
   * it; false or undefined (not known, lookup failed) leave it to activateAfter.
   */
  dnsShows: (selector: string) => boolean | undefined;
}

export interface DkimKeyPlan {
  /** Keys to generate and record, with their first state (a fresh selector each). */
  create: DkimKeyRecord[];
  /** Existing keys whose state or timestamps change: record these values. */
  update: DkimKeyRecord[];
  /** Selectors of keys to delete (their Secrets and DNS records). */
  delete: string[];
  /** After the plan: the keys to sign with, one per algorithm in the usual case. */
  active: DkimKeyRecord[];
  /** After the plan: every key whose record belongs in DNS (Pending, Active and Retiring ones). */
  published: DkimKeyRecord[];
  /**
   * The earliest time at which planning again gives another plan without anything else changing
   * (an activateAfter deadline, a retireAt, a rotateEvery rotation); undefined when only a spec
   * change or DNS showing a Pending key can.
   */
  nextAt?: number;
}

/** Selector suffix per algorithm. */
const SUFFIX: Record<DkimAlgorithm, string> = { 'rsa-sha256': 'rsa', 'ed25519-sha256': 'ed25519' };
/** RFC 1035 §2.3.4. */
const MAX_LABEL = 63;
const MAX_GENERATION = 1_000_000_000;
/** Each pass either reaches a fixpoint or moves keys forward; a handful always suffices. */
const MAX_PASSES = 16;

/** `<prefix>-<generation>-<rsa|ed25519>`, lower case; throws when it is not a valid selector. */
export function dkimSelector(prefix: string, generation: number, algorithm: DkimAlgorithm): string {
  const host = normaliseHostName(prefix);
  const selector = `${host ?? prefix}-${generation}-${SUFFIX[algorithm]}`;
  const lastLabel = selector.slice(selector.lastIndexOf('.') + 1);
  if (host === undefined || lastLabel.length > MAX_LABEL || normaliseHostName(selector) !== selector) {
    throw new DkimError(
      DkimErrorCode.InvalidSpec,
      `selector prefix ${JSON.stringify(prefix)} does not make a DNS name (${JSON.stringify(selector)})`,
    );
  }
  return selector;
}

/** Decides what happens to a MailDomain's generated DKIM keys at `now`. See DkimKeyPlan. */
export function planDkimKeys(input: DkimPlanInput): DkimKeyPlan {
  const spec = checkSpec(input.spec);
  const original = checkKeys(input.keys);
  const now = input.now;
  if (!Number.isFinite(now)) throw new DkimError(DkimErrorCode.InvalidSpec, 'now is not a valid date');

  // Asked once per selector, so that one plan sees one answer.
  const answers = new Map<string, boolean | undefined>();
  const shows = (selector: string): boolean | undefined => {
    if (!answers.has(selector)) answers.set(selector, input.dnsShows(selector));
    return answers.get(selector);
  };

  const keys = new Map([...original].map(([selector, key]) => [selector, copy(key)]));
  // Passes run until nothing changes, so the result is a fixpoint: planning again with the plan
  // applied (same now, same DNS) changes nothing.
  for (let pass = 0, before = snapshot(keys); ; pass++) {
    if (pass === MAX_PASSES) throw new Error('DKIM key planning did not settle (a bug)');
    step(keys, spec, now, shows, original);
    const after = snapshot(keys);
    if (after === before) break;
    before = after;
  }

  const create: DkimKeyRecord[] = [];
  const update: DkimKeyRecord[] = [];
  for (const key of keys.values()) {
    const was = original.get(key.selector);
    if (was === undefined) create.push(copy(key));
    else if (!sameState(was, key)) update.push(copy(key));
  }
  const final = sorted([...keys.values()]);
  const nextAt = nextChange(final, spec);
  return {
    create: sorted(create),
    update: sorted(update),
    delete: [...original.keys()].filter((selector) => !keys.has(selector)).sort(),
    active: final.filter((key) => key.state === DkimKeyState.Active).map(copy),
    published: final.map(copy),
    ...(nextAt === undefined ? {} : { nextAt }),
  };
}

/** When the timed rules next apply to `keys` (a fixpoint at the planning time, so all are later). */
function nextChange(keys: readonly DkimKeyRecord[], spec: DkimGenerateSpec): number | undefined {
  const times: number[] = [];
  for (const key of keys) {
    if (key.state === DkimKeyState.Pending && spec.activateAfter !== undefined) {
      times.push(key.createdAt + spec.activateAfter);
    }
    if (key.state === DkimKeyState.Retiring && key.retireAt !== undefined) times.push(key.retireAt);
  }
  const pending = keys.some((key) => key.state === DkimKeyState.Pending);
  if (spec.rotateEvery !== undefined && !pending && keys.length > 0) {
    const newest = Math.max(...keys.map((key) => key.generation));
    const born = Math.min(...keys.filter((key) => key.generation === newest).map((key) => key.createdAt));
    times.push(born + spec.rotateEvery);
  }
  return times.length === 0 ? undefined : Math.min(...times);
}

/** The keys as they are once `plan` is carried out (what the next planDkimKeys gets). */
export function applyDkimPlan(keys: readonly DkimKeyRecord[], plan: DkimKeyPlan): DkimKeyRecord[] {
  const gone = new Set(plan.delete);
  const changed = new Map(plan.update.map((key) => [key.selector, key]));
  const next = keys
    .filter((key) => !gone.has(key.selector))
    .map((key) => copy(changed.get(key.selector) ?? key));
  return sorted([...next, ...plan.create.map(copy)]);
}

/** One pass over every rule, in the order the key life goes. */
function step(
  keys: Map<string, DkimKeyRecord>,
  spec: DkimGenerateSpec,
  now: number,
  shows: (selector: string) => boolean | undefined,
  original: ReadonlyMap<string, DkimKeyRecord>,
): void {
  const wanted = (algorithm: DkimAlgorithm) => spec.algorithms.includes(algorithm);
  const all = () => [...keys.values()];
  const retire = (key: DkimKeyRecord) => {
    key.state = DkimKeyState.Retiring;
    key.retireAt = now + spec.retireAfter;
  };

  // A removed algorithm's Pending keys never signed anything: nothing to keep them for.
  for (const key of all()) {
    if (key.state === DkimKeyState.Pending && !wanted(key.algorithm)) keys.delete(key.selector);
  }

  for (const key of all()) {
    if (key.state !== DkimKeyState.Pending) continue;
    const waited = spec.activateAfter !== undefined && now - key.createdAt >= spec.activateAfter;
    if (shows(key.selector) === true || waited) {
      key.state = DkimKeyState.Active;
      key.activatedAt = now;
    }
  }

  // Per algorithm the newest Active key signs: older Active ones retire, and Pending ones no
  // newer than it are superseded (they never signed, so they go at once).
  for (const algorithm of DKIM_ALGORITHMS) {
    const mine = all().filter((key) => key.algorithm === algorithm);
    const newest = sorted(mine.filter((key) => key.state === DkimKeyState.Active)).at(-1);
    if (newest === undefined) continue;
    for (const key of mine) {
      if (key === newest) continue;
      if (key.state === DkimKeyState.Active) retire(key);
      else if (key.state === DkimKeyState.Pending && key.generation <= newest.generation)
        keys.delete(key.selector);
    }
  }

  // A removed algorithm keeps signing until a wanted one does: the domain never goes unsigned.
  if (all().some((key) => key.state === DkimKeyState.Active && wanted(key.algorithm))) {
    for (const key of all()) if (key.state === DkimKeyState.Active && !wanted(key.algorithm)) retire(key);
  }

  // A Retiring record without a date (edited by hand) starts its retirement now.
  for (const key of all()) {
    if (key.state === DkimKeyState.Retiring && key.retireAt === undefined)
      key.retireAt = now + spec.retireAfter;
  }

  const target = targetGeneration(all(), spec, now);
  if (target.rotate) {
    // A new generation supersedes one still waiting for DNS.
    for (const key of all()) if (key.state === DkimKeyState.Pending) keys.delete(key.selector);
  }

  // Every wanted algorithm has a key in the newest generation ("added algorithms join the
  // current generation"). Before any key signs, there is nothing to break: new keys sign at once.
  const signing = all().some((key) => key.state === DkimKeyState.Active);
  for (const algorithm of spec.algorithms) {
    const existing = all().find((key) => key.generation === target.generation && key.algorithm === algorithm);
    if (existing !== undefined) {
      // Only a removal retires a key of the newest generation: the algorithm is back, so is the key.
      if (existing.state === DkimKeyState.Retiring) {
        existing.state = DkimKeyState.Active;
        delete existing.retireAt;
      }
      continue;
    }
    const selector = dkimSelector(spec.selectorPrefix, target.generation, algorithm);
    if (keys.has(selector) || original.has(selector)) {
      throw new DkimError(DkimErrorCode.InvalidKeys, `selector ${selector} belongs to another key`, {
        selector,
      });
    }
    keys.set(selector, {
      generation: target.generation,
      algorithm,
      selector,
      state: signing ? DkimKeyState.Pending : DkimKeyState.Active,
      createdAt: now,
      ...(signing ? {} : { activatedAt: now }),
    });
  }

  for (const key of all()) {
    if (key.state === DkimKeyState.Retiring && (key.retireAt ?? now) <= now) keys.delete(key.selector);
  }
}

/** The generation every wanted algorithm must have a key in, and whether it is a new one. */
function targetGeneration(
  keys: readonly DkimKeyRecord[],
  spec: DkimGenerateSpec,
  now: number,
): { generation: number; rotate: boolean } {
  if (keys.length === 0) return { generation: spec.keyGeneration, rotate: true };
  const newest = Math.max(...keys.map((key) => key.generation));
  const current = keys.filter((key) => key.generation === newest);
  // A changed prefix can only reach DNS under new selectors, hence in a new generation.
  const renamed = current.some(
    (key) =>
      key.state !== DkimKeyState.Retiring &&
      spec.algorithms.includes(key.algorithm) &&
      key.selector !== dkimSelector(spec.selectorPrefix, key.generation, key.algorithm),
  );
  const born = Math.min(...current.map((key) => key.createdAt));
  // One periodic rotation at a time: never while keys still wait for DNS (else a rotateEvery
  // shorter than DNS propagation would replace Pending keys forever).
  const due =
    spec.rotateEvery !== undefined &&
    now - born >= spec.rotateEvery &&
    !keys.some((key) => key.state === DkimKeyState.Pending);
  if (spec.keyGeneration > newest || renamed || due) {
    return { generation: Math.max(newest + 1, spec.keyGeneration), rotate: true };
  }
  return { generation: newest, rotate: false };
}

function checkSpec(spec: DkimGenerateSpec): DkimGenerateSpec {
  const fail = (message: string): never => {
    throw new DkimError(DkimErrorCode.InvalidSpec, message);
  };
  if (spec.algorithms.length === 0) fail('algorithms must name at least one algorithm');
  for (const algorithm of spec.algorithms) {
    if (!isDkimAlgorithm(algorithm)) fail(`algorithm ${JSON.stringify(algorithm)} is not supported`);
  }
  if (new Set(spec.algorithms).size !== spec.algorithms.length) fail('algorithms must not name one twice');
  if (
    !Number.isInteger(spec.keyGeneration) ||
    spec.keyGeneration < 1 ||
    spec.keyGeneration > MAX_GENERATION
  ) {
    fail(`keyGeneration must be an integer from 1 to ${MAX_GENERATION}`);
  }
  const duration = (name: string, value: number | undefined, min: number) => {
    if (value !== undefined && (!Number.isFinite(value) || value < min))
      fail(`${name} must be a duration >= ${min} ms`);
  };
  duration('rotateEvery', spec.rotateEvery, 1);
  duration('activateAfter', spec.activateAfter, 0);
  duration('retireAfter', spec.retireAfter, 0);
  const selectorPrefix = normaliseHostName(spec.selectorPrefix) ?? fail('selectorPrefix must be DNS labels');
  // The longest selector this spec can make, checked now rather than at some later rotation.
  for (const algorithm of spec.algorithms) dkimSelector(selectorPrefix, MAX_GENERATION, algorithm);
  return { ...spec, selectorPrefix };
}

function checkKeys(keys: readonly DkimKeyRecord[]): Map<string, DkimKeyRecord> {
  const out = new Map<string, DkimKeyRecord>();
  for (const key of keys) {
    const fail = (message: string): never => {
      throw new DkimError(DkimErrorCode.InvalidKeys, `DKIM key ${key.selector}: ${message}`, {
        selector: key.selector,
      });
    };
    const selector = normaliseHostName(key.selector) ?? fail('the selector is not DNS labels');
    if (out.has(selector)) fail('the selector is recorded twice');
    if (!Number.isInteger(key.generation) || key.generation < 1)
      fail('the generation is not an integer >= 1');
    if (!isDkimAlgorithm(key.algorithm)) fail(`algorithm ${JSON.stringify(key.algorithm)} is not supported`);
    if (!Object.values(DkimKeyState).includes(key.state))
      fail(`state ${JSON.stringify(key.state)} is unknown`);
    for (const [name, time] of [
      ['createdAt', key.createdAt],
      ['activatedAt', key.activatedAt],
      ['retireAt', key.retireAt],
    ] as const) {
      if (time === undefined ? name === 'createdAt' : !Number.isFinite(time))
        fail(`${name} is not a time in ms`);
    }
    out.set(selector, { ...copy(key), selector });
  }
  return out;
}

function copy(key: DkimKeyRecord): DkimKeyRecord {
  const out: DkimKeyRecord = {
    generation: key.generation,
    algorithm: key.algorithm,
    selector: key.selector,
    state: key.state,
    createdAt: key.createdAt,
  };
  if (key.activatedAt !== undefined) out.activatedAt = key.activatedAt;
  if (key.retireAt !== undefined) out.retireAt = key.retireAt;
  return out;
}

function sameState(a: DkimKeyRecord, b: DkimKeyRecord): boolean {
  return a.state === b.state && a.activatedAt === b.activatedAt && a.retireAt === b.retireAt;
}

/** Oldest first: generation, then algorithm (rsa first), then selector. */
function sorted(keys: DkimKeyRecord[]): DkimKeyRecord[] {
  return keys.sort(
    (a, b) =>
      a.generation - b.generation ||
      DKIM_ALGORITHMS.indexOf(a.algorithm) - DKIM_ALGORITHMS.indexOf(b.algorithm) ||
      a.selector.localeCompare(b.selector),
  );
}

function snapshot(keys: ReadonlyMap<string, DkimKeyRecord>): string {
  return JSON.stringify(sorted([...keys.values()]));
}
