import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { MailDomain, Secret } from '@petrel/config';
import type { DomainMaterial, Located } from '../config/compile.ts';
import { reconcileDkim } from '../maildomain/dkim.ts';
import type { MailDomainObject } from '../maildomain/ports.ts';
import { hostnamesOf, type OperatorCa, reconcileTls } from '../maildomain/tls.ts';
import { createCa } from '../pki/index.ts';
import { localPorts } from './ports.ts';

export interface LocalOperatorOptions {
  /** Where generated keys, the local CA and statuses are kept (`<data-dir>/operator`); none: no material. */
  stateDir?: string;
  now?: () => number;
  /** Lines for the user (key created, certificate issued). */
  log?: (line: string) => void;
}

/** The local CA: created once in the state directory and kept, like the operator's CA Secret. */
async function localCa(stateDir: string, now: number): Promise<OperatorCa> {
  const path = join(stateDir, 'ca.json');
  if (existsSync(path)) return JSON.parse(readFileSync(path, 'utf8')) as OperatorCa;
  const ca = await createCa({ commonName: 'Petrel local CA', now: new Date(now) });
  mkdirSync(stateDir, { recursive: true, mode: 0o700 });
  try {
    writeFileSync(path, JSON.stringify(ca), { mode: 0o600, flag: 'wx' });
    return ca;
  } catch {
    return JSON.parse(readFileSync(path, 'utf8')) as OperatorCa; // made concurrently
  }
}

/**
 * Runs the MailDomain reconcilers' DKIM and TLS parts for every domain of the directory, over
 * files, and returns each domain's material for the compile. Problems (e.g. cert-manager asked
 * for, which local mode does not have) are added to `problems`.
 */
export async function localMaterial(
  domains: readonly Located<MailDomain>[],
  secrets: ReadonlyMap<string, Secret>,
  options: LocalOperatorOptions & { stateDir: string },
  problems: string[],
  /** The domains whose manifest sets spec.tls (the schema's default does not count locally). */
  withTls: ReadonlySet<MailDomain>,
): Promise<Map<MailDomain, DomainMaterial>> {
  const now = (options.now ?? Date.now)();
  const ports = localPorts({
    stateDir: options.stateDir,
    userSecrets: () => secrets,
    event: (_domain, type, reason, message) =>
      options.log?.(`${type === 'Warning' ? 'warning: ' : ''}${reason}: ${message}`),
  });
  const out = new Map<MailDomain, DomainMaterial>();
  for (const { value, where } of domains) {
    const object: MailDomainObject = {
      apiVersion: value.apiVersion,
      kind: value.kind,
      // A stable uid per name: the generated Secrets are found again after a restart.
      metadata: { name: value.metadata.name, namespace: 'default', uid: `local-${value.metadata.name}` },
      spec: value.spec,
    };
    const dkim = await reconcileDkim(object, value, ports, now, () => undefined);
    const wantsTls = withTls.has(value);
    let tls: Awaited<ReturnType<typeof reconcileTls>> | undefined;
    if (wantsTls) {
      tls = await reconcileTls(object, value, ports, { ca: () => localCa(options.stateDir, now) }, now);
      if (tls.condition.status !== 'True')
        problems.push(`${where}: MailDomain ${value.metadata.name}: TLS: ${tls.condition.message}`);
    }
    out.set(value, {
      dkimKeys: dkim.signing,
      ...(tls?.material ? { tls: tls.material } : {}),
      hostnames: hostnamesOf(value).all,
      draining: false,
    });
  }
  return out;
}
