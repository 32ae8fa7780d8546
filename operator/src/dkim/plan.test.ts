import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { DkimError, DkimErrorCode } from './errors.ts';
import type { DkimAlgorithm } from './keys.ts';
import {
  applyDkimPlan,
  type DkimGenerateSpec,
  type DkimKeyPlan,
  type DkimKeyRecord,
  DkimKeyState,
  dkimSelector,
  planDkimKeys,
} from './plan.ts';

const HOUR = 60 * 60 * 1000;
const DAY = 24 * HOUR;
const T0 = Date.UTC(2030, 0, 1);
const at = (ms: number) => T0 + ms;
const RSA: DkimAlgorithm = 'rsa-sha256';
const ED: DkimAlgorithm = 'ed25519-sha256';

function spec(overrides: Partial<DkimGenerateSpec> = {}): DkimGenerateSpec {
  return {
    algorithms: [RSA, ED],
    selectorPrefix: 'petrel',
    keyGeneration: 1,
    retireAfter: 7 * DAY,
    ...overrides,
  };
}

type Shows = (selector: string) => boolean | undefined;
const nothingShown: Shows = () => undefined;

/** Selector → state, the shape most assertions read best in. */
function states(keys: readonly DkimKeyRecord[]): Record<string, DkimKeyState> {
  return Object.fromEntries(keys.map((key) => [key.selector, key.state]));
}

/**
 * A MailDomain's keys as the reconciler keeps them: every plan is applied, then checked against
 * the rules that must hold after any plan (idempotence, selectors never reused, signing never
 * stops for an algorithm that signed).
 */
class Domain {
  keys: DkimKeyRecord[] = [];
  readonly everCreated = new Set<string>();
  spec: DkimGenerateSpec;
  constructor(initial: DkimGenerateSpec) {
    this.spec = initial;
  }

  plan(now: number, dnsShows: Shows = nothingShown): DkimKeyPlan {
    const before = structuredClone(this.keys);
    const plan = planDkimKeys({ spec: this.spec, keys: this.keys, now, dnsShows });
    assert.deepEqual(this.keys, before, 'the input keys are not modified');

    for (const key of plan.create) {
      assert.ok(!this.everCreated.has(key.selector), `selector ${key.selector} is never generated twice`);
      this.everCreated.add(key.selector);
      assert.equal(key.selector, dkimSelector(this.spec.selectorPrefix, key.generation, key.algorithm));
    }
    const next = applyDkimPlan(this.keys, plan);
    assert.deepEqual(next, plan.published, 'published is the key set after the plan');
    assert.deepEqual(
      plan.active,
      next.filter((key) => key.state === DkimKeyState.Active),
    );

    // Idempotence: planning again with the plan applied changes nothing.
    const again = planDkimKeys({ spec: this.spec, keys: next, now, dnsShows });
    assert.deepEqual(
      { create: again.create, update: again.update, delete: again.delete },
      {
        create: [],
        update: [],
        delete: [],
      },
    );
    assert.deepEqual(again.published, plan.published);

    // nextAt: nothing changes before it, something changes at it.
    if (plan.nextAt !== undefined) {
      assert.ok(plan.nextAt > now, 'nextAt is later than now');
      const changes = (p: DkimKeyPlan) => p.create.length + p.update.length + p.delete.length;
      const input = { spec: this.spec, keys: next, dnsShows };
      assert.equal(changes(planDkimKeys({ ...input, now: plan.nextAt - 1 })), 0, 'no change before nextAt');
      assert.ok(changes(planDkimKeys({ ...input, now: plan.nextAt })) > 0, 'a change at nextAt');
    }

    // An algorithm that signed and is still wanted keeps signing.
    for (const algorithm of this.spec.algorithms) {
      const signed = this.keys.some(
        (key) => key.algorithm === algorithm && key.state === DkimKeyState.Active,
      );
      const signs = next.some((key) => key.algorithm === algorithm && key.state === DkimKeyState.Active);
      if (signed) assert.ok(signs, `${algorithm} still has an Active key`);
    }
    if (this.keys.some((key) => key.state === DkimKeyState.Active)) {
      assert.ok(plan.active.length > 0, 'the domain keeps signing');
    }
    this.keys = next;
    return plan;
  }
}

describe('dkimSelector', () => {
  it('is <prefix>-<generation>-<rsa|ed25519>, lower case, and refuses what DNS cannot carry', () => {
    assert.equal(dkimSelector('petrel', 1, RSA), 'petrel-1-rsa');
    assert.equal(dkimSelector('Mail.Petrel', 12, ED), 'mail.petrel-12-ed25519');
    for (const prefix of ['', 'bad_prefix', '-x', 'a..b', 'p'.repeat(60)]) {
      assert.throws(
        () => dkimSelector(prefix, 1, ED),
        (error: unknown) => error instanceof DkimError && error.code === DkimErrorCode.InvalidSpec,
        prefix,
      );
    }
  });
});

describe('planDkimKeys: the first keys', () => {
  it('creates generation keyGeneration for every algorithm, Active at once', () => {
    const domain = new Domain(spec());
    const plan = domain.plan(at(0));
    assert.deepEqual(plan.create, [
      {
        generation: 1,
        algorithm: RSA,
        selector: 'petrel-1-rsa',
        state: 'Active',
        createdAt: at(0),
        activatedAt: at(0),
      },
      {
        generation: 1,
        algorithm: ED,
        selector: 'petrel-1-ed25519',
        state: 'Active',
        createdAt: at(0),
        activatedAt: at(0),
      },
    ]);
    assert.deepEqual(plan.update, []);
    assert.deepEqual(plan.delete, []);
    assert.deepEqual(
      plan.active.map((key) => key.selector),
      ['petrel-1-rsa', 'petrel-1-ed25519'],
    );
  });

  it('starts at the generation the spec names, under a normalised prefix', () => {
    const domain = new Domain(spec({ keyGeneration: 3, selectorPrefix: 'Mail.Example', algorithms: [ED] }));
    assert.deepEqual(states(domain.plan(at(0)).create), { 'mail.example-3-ed25519': 'Active' });
  });

  it('changes nothing while no rotation is due, however much time passes', () => {
    const domain = new Domain(spec());
    assert.equal(domain.plan(at(0)).nextAt, undefined, 'nothing is timed');
    for (const when of [HOUR, 30 * DAY, 3650 * DAY]) {
      const plan = domain.plan(at(when), () => true);
      assert.deepEqual([plan.create, plan.update, plan.delete], [[], [], []]);
    }
  });
});

describe('planDkimKeys: rotation', () => {
  function rotated(): Domain {
    const domain = new Domain(spec());
    domain.plan(at(0));
    domain.spec = spec({ keyGeneration: 2 });
    return domain;
  }

  it('raising keyGeneration creates the next generation Pending, and the old one keeps signing', () => {
    const domain = rotated();
    const plan = domain.plan(at(DAY));
    assert.deepEqual(states(plan.create), { 'petrel-2-rsa': 'Pending', 'petrel-2-ed25519': 'Pending' });
    assert.ok(plan.create.every((key) => key.activatedAt === undefined && key.createdAt === T0 + DAY));
    assert.deepEqual(
      plan.active.map((key) => key.selector),
      ['petrel-1-rsa', 'petrel-1-ed25519'],
    );
    assert.equal(plan.published.length, 4, 'Pending keys are published so that DNS can show them');
  });

  it('activates a Pending key once DNS shows it, and retires the Active key it replaces', () => {
    const domain = rotated();
    domain.plan(at(DAY));
    const shows: Shows = (selector) =>
      selector === 'petrel-2-rsa' ? true : selector === 'petrel-2-ed25519' ? false : undefined;
    const asked: string[] = [];
    planDkimKeys({
      spec: domain.spec,
      keys: domain.keys,
      now: at(DAY + HOUR),
      dnsShows: (selector) => {
        asked.push(selector);
        return shows(selector);
      },
    });
    assert.deepEqual(
      asked.sort(),
      ['petrel-2-ed25519', 'petrel-2-rsa'],
      'DNS is asked about Pending keys, once',
    );
    const plan = domain.plan(at(DAY + HOUR), shows);
    assert.deepEqual(states(plan.update), { 'petrel-1-rsa': 'Retiring', 'petrel-2-rsa': 'Active' });
    const retiring = plan.update.find((key) => key.selector === 'petrel-1-rsa');
    assert.deepEqual(retiring?.retireAt, at(DAY + HOUR + 7 * DAY));
    assert.deepEqual(plan.update.find((key) => key.selector === 'petrel-2-rsa')?.activatedAt, at(DAY + HOUR));
    // ed25519 still waits: its generation-1 key signs meanwhile.
    assert.deepEqual(
      plan.active.map((key) => key.selector),
      ['petrel-1-ed25519', 'petrel-2-rsa'],
    );
  });

  it('activates after activateAfter without DNS, and never without either', () => {
    const waiting = rotated();
    waiting.spec = spec({ keyGeneration: 2, activateAfter: 2 * DAY });
    waiting.plan(at(DAY));
    assert.deepEqual(waiting.plan(at(3 * DAY - 1), () => false).update, []);
    assert.deepEqual(states(waiting.plan(at(3 * DAY)).active), {
      'petrel-2-rsa': 'Active',
      'petrel-2-ed25519': 'Active',
    });

    const patient = rotated();
    patient.plan(at(DAY));
    assert.deepEqual(patient.plan(at(1000 * DAY), () => false).update, [], 'no activateAfter: DNS decides');
    assert.deepEqual(
      patient.keys.filter((key) => key.state === 'Active').map((key) => key.generation),
      [1, 1],
    );
  });

  it('keeps a Retiring key published until retireAt, then deletes it', () => {
    const domain = rotated();
    domain.plan(at(DAY));
    domain.plan(at(2 * DAY), () => true);
    const just = domain.plan(at(9 * DAY - 1));
    assert.deepEqual(just.delete, []);
    assert.deepEqual(states(just.published), {
      'petrel-1-rsa': 'Retiring',
      'petrel-1-ed25519': 'Retiring',
      'petrel-2-rsa': 'Active',
      'petrel-2-ed25519': 'Active',
    });
    const gone = domain.plan(at(9 * DAY));
    assert.deepEqual(gone.delete, ['petrel-1-ed25519', 'petrel-1-rsa']);
    assert.deepEqual(states(gone.published), { 'petrel-2-rsa': 'Active', 'petrel-2-ed25519': 'Active' });
  });

  it('rotates rotateEvery after the newest generation was created, one rotation at a time', () => {
    const domain = new Domain(spec({ rotateEvery: 30 * DAY, algorithms: [ED] }));
    domain.plan(at(0));
    assert.deepEqual(domain.plan(at(30 * DAY - 1)).create, []);
    assert.deepEqual(states(domain.plan(at(30 * DAY)).create), { 'petrel-2-ed25519': 'Pending' });
    // DNS does not show it for 40 days: no third generation meanwhile.
    assert.deepEqual(domain.plan(at(70 * DAY), () => false).create, []);
    // rotateEvery counts from generation 2's creation: overdue, so generation 3 follows its activation.
    const plan = domain.plan(at(70 * DAY + HOUR), (selector) => selector === 'petrel-2-ed25519');
    assert.deepEqual(states(plan.update), { 'petrel-1-ed25519': 'Retiring', 'petrel-2-ed25519': 'Active' });
    assert.deepEqual(states(plan.create), { 'petrel-3-ed25519': 'Pending' });
    assert.deepEqual(states(plan.active), { 'petrel-2-ed25519': 'Active' });
  });

  it('jumps to a keyGeneration far above the newest, and does not rotate again for it', () => {
    const domain = new Domain(spec({ algorithms: [RSA] }));
    domain.plan(at(0));
    domain.spec = spec({ algorithms: [RSA], keyGeneration: 5 });
    assert.deepEqual(states(domain.plan(at(HOUR)).create), { 'petrel-5-rsa': 'Pending' });
    assert.deepEqual(domain.plan(at(2 * HOUR), () => true).create, []);
    assert.deepEqual(domain.plan(at(30 * DAY)).create, []);
  });

  it('a raised keyGeneration supersedes a generation still Pending (never used to sign)', () => {
    const domain = rotated();
    domain.plan(at(DAY));
    domain.spec = spec({ keyGeneration: 3 });
    const plan = domain.plan(at(2 * DAY));
    assert.deepEqual(plan.delete, ['petrel-2-ed25519', 'petrel-2-rsa']);
    assert.deepEqual(states(plan.create), { 'petrel-3-rsa': 'Pending', 'petrel-3-ed25519': 'Pending' });
    assert.deepEqual(
      plan.active.map((key) => key.selector),
      ['petrel-1-rsa', 'petrel-1-ed25519'],
    );
  });

  it('a new selectorPrefix arrives with a new generation, the old one signing until it is shown', () => {
    const domain = new Domain(spec({ algorithms: [RSA] }));
    domain.plan(at(0));
    domain.spec = spec({ algorithms: [RSA], selectorPrefix: 'mail' });
    assert.deepEqual(states(domain.plan(at(HOUR)).create), { 'mail-2-rsa': 'Pending' });
    const plan = domain.plan(at(2 * HOUR), (selector) => selector === 'mail-2-rsa');
    assert.deepEqual(states(plan.published), { 'petrel-1-rsa': 'Retiring', 'mail-2-rsa': 'Active' });
  });

  it('deletes replaced keys in the same plan when retireAfter is 0', () => {
    const domain = new Domain(spec({ algorithms: [ED], retireAfter: 0 }));
    domain.plan(at(0));
    domain.spec = spec({ algorithms: [ED], retireAfter: 0, keyGeneration: 2 });
    domain.plan(at(HOUR));
    const plan = domain.plan(at(2 * HOUR), () => true);
    assert.deepEqual(plan.delete, ['petrel-1-ed25519']);
    assert.deepEqual(states(plan.published), { 'petrel-2-ed25519': 'Active' });
  });

  it('with activateAfter 0 a rotation completes in one plan', () => {
    const domain = new Domain(spec({ algorithms: [ED], activateAfter: 0 }));
    domain.plan(at(0));
    domain.spec = spec({ algorithms: [ED], activateAfter: 0, keyGeneration: 2 });
    const plan = domain.plan(at(HOUR));
    assert.deepEqual(states(plan.create), { 'petrel-2-ed25519': 'Active' });
    assert.deepEqual(states(plan.update), { 'petrel-1-ed25519': 'Retiring' });
  });
});

describe('planDkimKeys: algorithms added and removed', () => {
  it('an added algorithm joins the current generation, Pending while the domain signs', () => {
    const domain = new Domain(spec({ algorithms: [RSA], keyGeneration: 4 }));
    domain.plan(at(0));
    domain.spec = spec({ algorithms: [RSA, ED], keyGeneration: 4 });
    const plan = domain.plan(at(HOUR));
    assert.deepEqual(states(plan.create), { 'petrel-4-ed25519': 'Pending' });
    assert.deepEqual(states(domain.plan(at(2 * HOUR), () => true).update), { 'petrel-4-ed25519': 'Active' });
    assert.deepEqual(states(domain.keys), { 'petrel-4-rsa': 'Active', 'petrel-4-ed25519': 'Active' });
  });

  it('an algorithm added during a rotation joins the generation being rolled out', () => {
    const domain = new Domain(spec({ algorithms: [RSA] }));
    domain.plan(at(0));
    domain.spec = spec({ algorithms: [RSA], keyGeneration: 2 });
    domain.plan(at(HOUR));
    domain.spec = spec({ algorithms: [RSA, ED], keyGeneration: 2 });
    assert.deepEqual(states(domain.plan(at(2 * HOUR)).create), { 'petrel-2-ed25519': 'Pending' });
  });

  it('a removed algorithm retires its Active key and drops its Pending one', () => {
    const domain = new Domain(spec());
    domain.plan(at(0));
    domain.spec = spec({ keyGeneration: 2 });
    domain.plan(at(HOUR));
    domain.spec = spec({ keyGeneration: 2, algorithms: [RSA] });
    const plan = domain.plan(at(2 * HOUR));
    assert.deepEqual(plan.delete, ['petrel-2-ed25519']);
    assert.deepEqual(states(plan.update), { 'petrel-1-ed25519': 'Retiring' });
    assert.deepEqual(plan.update[0]?.retireAt, at(2 * HOUR + 7 * DAY));
    assert.deepEqual(domain.plan(at(2 * HOUR + 7 * DAY)).delete, ['petrel-1-ed25519']);
  });

  it('switching algorithms keeps the old one signing until the new one is shown', () => {
    const domain = new Domain(spec({ algorithms: [RSA] }));
    domain.plan(at(0));
    domain.spec = spec({ algorithms: [ED] });
    const first = domain.plan(at(HOUR));
    assert.deepEqual(states(first.published), { 'petrel-1-rsa': 'Active', 'petrel-1-ed25519': 'Pending' });
    const second = domain.plan(at(2 * HOUR), () => true);
    assert.deepEqual(states(second.published), { 'petrel-1-rsa': 'Retiring', 'petrel-1-ed25519': 'Active' });
  });

  it('an algorithm removed and added back gets its Retiring key back, not a new one', () => {
    const domain = new Domain(spec());
    domain.plan(at(0));
    domain.spec = spec({ algorithms: [RSA] });
    domain.plan(at(HOUR));
    domain.spec = spec();
    const plan = domain.plan(at(2 * HOUR));
    assert.deepEqual(plan.create, []);
    assert.deepEqual(plan.update, [
      {
        generation: 1,
        algorithm: ED,
        selector: 'petrel-1-ed25519',
        state: 'Active',
        createdAt: at(0),
        activatedAt: at(0),
      },
    ]);
  });

  it('an algorithm added back after a rotation gets a key in the new generation', () => {
    const domain = new Domain(spec());
    domain.plan(at(0));
    domain.spec = spec({ algorithms: [RSA], keyGeneration: 2 });
    domain.plan(at(HOUR), () => true);
    domain.spec = spec({ keyGeneration: 2 });
    const plan = domain.plan(at(2 * HOUR));
    assert.deepEqual(states(plan.create), { 'petrel-2-ed25519': 'Pending' });
    assert.equal(
      plan.published.find((key) => key.selector === 'petrel-1-ed25519')?.state,
      'Retiring',
      'the old key is not revived across generations',
    );
  });
});

describe('planDkimKeys: records out of the ordinary', () => {
  const key = (overrides: Partial<DkimKeyRecord>): DkimKeyRecord => ({
    generation: 1,
    algorithm: RSA,
    selector: 'petrel-1-rsa',
    state: 'Active',
    createdAt: at(0),
    activatedAt: at(0),
    ...overrides,
  });

  it('gives a Retiring key without retireAt a full retirement from now', () => {
    const plan = planDkimKeys({
      spec: spec({ algorithms: [RSA], keyGeneration: 2 }),
      keys: [
        key({ state: 'Retiring', activatedAt: undefined }),
        key({ generation: 2, selector: 'petrel-2-rsa' }),
      ],
      now: at(DAY),
      dnsShows: nothingShown,
    });
    assert.deepEqual(
      plan.update,
      [{ ...key({ state: 'Retiring' }), activatedAt: undefined, retireAt: at(8 * DAY) }].map(
        ({ activatedAt: _, ...rest }) => rest,
      ),
    );
  });

  it('retires all but the newest of several Active keys of one algorithm', () => {
    const plan = planDkimKeys({
      spec: spec({ algorithms: [RSA], keyGeneration: 3 }),
      keys: [
        key({}),
        key({ generation: 3, selector: 'petrel-3-rsa' }),
        key({ generation: 2, selector: 'petrel-2-rsa' }),
      ],
      now: at(DAY),
      dnsShows: nothingShown,
    });
    assert.deepEqual(states(plan.published), {
      'petrel-1-rsa': 'Retiring',
      'petrel-2-rsa': 'Retiring',
      'petrel-3-rsa': 'Active',
    });
  });

  it('signs at once when no key signs any more (the Active ones were deleted by hand)', () => {
    const plan = planDkimKeys({
      spec: spec({ algorithms: [RSA], keyGeneration: 2 }),
      keys: [key({ state: 'Retiring', retireAt: at(2 * DAY) })],
      now: at(DAY),
      dnsShows: nothingShown,
    });
    assert.deepEqual(states(plan.create), { 'petrel-2-rsa': 'Active' });
  });

  it('refuses to generate a selector a recorded key already uses', () => {
    assert.throws(
      () =>
        planDkimKeys({
          spec: spec({ algorithms: [RSA], keyGeneration: 2 }),
          keys: [key({ selector: 'petrel-2-rsa' })],
          now: at(DAY),
          dnsShows: nothingShown,
        }),
      (error: unknown) =>
        error instanceof DkimError &&
        error.code === DkimErrorCode.InvalidKeys &&
        error.selector === 'petrel-2-rsa',
    );
  });

  it('refuses settings out of range and records that contradict each other', () => {
    const bad: [Partial<DkimGenerateSpec>, string][] = [
      [{ keyGeneration: 0 }, 'keyGeneration'],
      [{ keyGeneration: 1.5 }, 'keyGeneration'],
      [{ algorithms: [] }, 'algorithms'],
      [{ algorithms: [RSA, RSA] }, 'twice'],
      [{ algorithms: ['rsa-sha1' as DkimAlgorithm] }, 'not supported'],
      [{ selectorPrefix: 'bad_prefix' }, 'selectorPrefix'],
      [{ selectorPrefix: 'p'.repeat(50) }, 'does not make a DNS name'],
      [{ rotateEvery: 0 }, 'rotateEvery'],
      [{ activateAfter: -1 }, 'activateAfter'],
      [{ retireAfter: Number.NaN }, 'retireAfter'],
    ];
    for (const [overrides, message] of bad) {
      assert.throws(
        () => planDkimKeys({ spec: spec(overrides), keys: [], now: at(0), dnsShows: nothingShown }),
        (error: unknown) =>
          error instanceof DkimError &&
          error.code === DkimErrorCode.InvalidSpec &&
          error.message.includes(message),
        JSON.stringify(overrides),
      );
    }
    const badKeys: [DkimKeyRecord[], string][] = [
      [[key({}), key({ selector: 'PETREL-1-RSA' })], 'twice'],
      [[key({ generation: 0 })], 'generation'],
      [[key({ state: 'Gone' as DkimKeyState })], 'state'],
      [[key({ createdAt: Number.NaN })], 'createdAt'],
      [[key({ algorithm: 'rsa-sha1' as DkimAlgorithm })], 'algorithm'],
      [[key({ selector: 'a_b' })], 'selector'],
    ];
    for (const [keys, message] of badKeys) {
      assert.throws(
        () => planDkimKeys({ spec: spec(), keys, now: at(0), dnsShows: nothingShown }),
        (error: unknown) =>
          error instanceof DkimError &&
          error.code === DkimErrorCode.InvalidKeys &&
          error.message.includes(message),
        message,
      );
    }
  });
});

describe('planDkimKeys: a year of rotations on a clock', () => {
  it('rotates monthly, activates when DNS shows the keys, retires and deletes on time', () => {
    const domain = new Domain(spec({ rotateEvery: 30 * DAY, activateAfter: 3 * DAY, retireAfter: 7 * DAY }));
    /** What DNS serves: a published selector appears two hours after the plan that published it. */
    const firstPublished = new Map<string, number>();
    const events: string[] = [];
    for (let now = T0; now <= T0 + 365 * DAY; now += HOUR) {
      const shows: Shows = (selector) => {
        const since = firstPublished.get(selector);
        return since !== undefined && now - since >= 2 * HOUR;
      };
      const plan = domain.plan(now, shows);
      for (const key of plan.published)
        if (!firstPublished.has(key.selector)) firstPublished.set(key.selector, now);
      const hour = (now - T0) / HOUR;
      for (const key of plan.create) events.push(`${hour} create ${key.selector} ${key.state}`);
      for (const key of plan.update) events.push(`${hour} ${key.state} ${key.selector}`);
      for (const selector of plan.delete) events.push(`${hour} delete ${selector}`);

      // Exactly one signing key per algorithm, every hour of the year.
      assert.deepEqual(plan.active.map((key) => key.algorithm).sort(), [ED, RSA], `at hour ${hour}`);
      // Every published key's record stays until its retireAt.
      for (const key of plan.published) {
        if (key.state === 'Retiring') assert.ok((key.retireAt ?? 0) > now);
      }
    }
    const expected: string[] = ['0 create petrel-1-rsa Active', '0 create petrel-1-ed25519 Active'];
    for (let generation = 2; generation <= 13; generation++) {
      const created = 30 * 24 * (generation - 1);
      // DNS shows a new generation two hours after it is created: it activates then, and the one
      // it replaces stays published for retireAfter (7 days).
      expected.push(
        `${created} create petrel-${generation}-rsa Pending`,
        `${created} create petrel-${generation}-ed25519 Pending`,
        `${created + 2} Retiring petrel-${generation - 1}-rsa`,
        `${created + 2} Retiring petrel-${generation - 1}-ed25519`,
        `${created + 2} Active petrel-${generation}-rsa`,
        `${created + 2} Active petrel-${generation}-ed25519`,
        `${created + 2 + 7 * 24} delete petrel-${generation - 1}-ed25519`,
        `${created + 2 + 7 * 24} delete petrel-${generation - 1}-rsa`,
      );
    }
    assert.deepEqual(
      events,
      expected.filter((event) => Number(event.split(' ')[0]) <= 365 * 24),
    );
  });

  it('activates on activateAfter when DNS never shows the keys, each change at the nextAt announced', () => {
    const domain = new Domain(spec({ algorithms: [ED], rotateEvery: 30 * DAY, activateAfter: 3 * DAY }));
    const activations: number[] = [];
    const changedAt: number[] = [];
    const announced: number[] = [];
    for (let now = T0; now <= T0 + 100 * DAY; now += HOUR) {
      const plan = domain.plan(now, () => false);
      for (const key of plan.update) if (key.state === 'Active') activations.push((now - T0) / DAY);
      if (now > T0 && plan.create.length + plan.update.length + plan.delete.length > 0) changedAt.push(now);
      if (plan.nextAt !== undefined && announced.at(-1) !== plan.nextAt) announced.push(plan.nextAt);
    }
    assert.deepEqual(activations, [33, 63, 93]);
    // Without DNS, time alone moves the keys: exactly at the times the plans announced.
    assert.deepEqual(
      changedAt,
      announced.filter((t) => t <= T0 + 100 * DAY),
    );
    assert.deepEqual(
      changedAt.map((t) => (t - T0) / DAY),
      [30, 33, 40, 60, 63, 70, 90, 93, 100],
    );
  });
});
