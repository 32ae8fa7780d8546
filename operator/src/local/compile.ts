import { chmod, readdir, readFile, rename, writeFile } from 'node:fs/promises';
import { join, relative } from 'node:path';
import {
  ConfigError,
  ConfigErrorCode,
  type DeliveryPolicy,
  DeliveryPolicySchema,
  type MailDomain,
  MailDomainSchema,
  type RuntimeConfig,
  type Secret,
  SecretSchema,
} from '@petrel/config';
import { parseAllDocuments } from 'yaml';
import { z } from 'zod';
import { compileRuntimeConfig, type Located } from '../config/compile.ts';
import { type LocalOperatorOptions, localMaterial } from './material.ts';

const MANIFEST_FILE = /\.(ya?ml|json)$/i;

async function manifestFiles(dir: string): Promise<string[]> {
  let entries: string[];
  try {
    entries = await readdir(dir, { recursive: true });
  } catch (error) {
    throw new ConfigError(ConfigErrorCode.ConfigDirUnreadable, `cannot read config directory ${dir}`, {
      cause: error,
    });
  }
  return entries.filter((e) => MANIFEST_FILE.test(e)).sort();
}

/**
 * Local mode of the operator: reads MailDomain and Secret manifests from a directory and compiles
 * them into the runtime config the data plane loads. Every problem in every file is reported at
 * once; nothing is compiled from a directory with errors.
 */
export async function compileDirectory(
  dir: string,
  generation: number,
  options: LocalOperatorOptions = {},
): Promise<RuntimeConfig> {
  const problems: string[] = [];
  const domains: Located<MailDomain>[] = [];
  const policies: Located<DeliveryPolicy>[] = [];
  const secrets = new Map<string, Secret>();
  const explicitTls = new Set<MailDomain>();

  for (const file of await manifestFiles(dir)) {
    const text = await readFile(join(dir, file), 'utf8');
    const docs = parseAllDocuments(text);
    const list = Array.isArray(docs) ? docs : [docs];
    list.forEach((doc, index) => {
      const where = `${relative(dir, join(dir, file))}#${index + 1}`;
      if (doc.errors.length > 0) {
        problems.push(`${where}: YAML error: ${doc.errors[0]?.message ?? 'unknown'}`);
        return;
      }
      const value: unknown = doc.toJS();
      if (value === null || value === undefined) return;
      const kind =
        typeof value === 'object' && 'kind' in value ? (value as { kind: unknown }).kind : undefined;
      if (kind === 'MailDomain') {
        const parsed = MailDomainSchema.safeParse(value);
        if (parsed.success) {
          domains.push({ value: parsed.data, where });
          // The schema defaults spec.tls; locally a certificate is made only when asked for.
          const spec = (value as { spec?: unknown }).spec;
          if (typeof spec === 'object' && spec !== null && 'tls' in spec) explicitTls.add(parsed.data);
        } else problems.push(`${where}: invalid MailDomain:\n${z.prettifyError(parsed.error)}`);
      } else if (kind === 'DeliveryPolicy') {
        const parsed = DeliveryPolicySchema.safeParse(value);
        if (parsed.success) policies.push({ value: parsed.data, where });
        else problems.push(`${where}: invalid DeliveryPolicy:\n${z.prettifyError(parsed.error)}`);
      } else if (kind === 'Secret') {
        const parsed = SecretSchema.safeParse(value);
        if (parsed.success) secrets.set(parsed.data.metadata.name, parsed.data);
        else problems.push(`${where}: invalid Secret:\n${z.prettifyError(parsed.error)}`);
      } else {
        problems.push(
          `${where}: unsupported kind ${JSON.stringify(kind)} (expected MailDomain, DeliveryPolicy or Secret)`,
        );
      }
    });
  }

  // The operator's own material (generated DKIM keys, certificates from its CA) when it has a
  // place to keep it; the same reconcilers as in a cluster, over files.
  const material =
    options.stateDir === undefined || problems.length > 0
      ? undefined
      : await localMaterial(
          domains,
          secrets,
          { ...options, stateDir: options.stateDir },
          problems,
          explicitTls,
        );
  // Run even after parse problems, so that every problem in the directory is reported at once.
  const result = compileRuntimeConfig({
    domains,
    policies,
    ...(material === undefined ? {} : { material: (d: MailDomain) => material.get(d) }),
    // One namespace locally: a manifest's namespace, if any, does not separate Secrets.
    secret: (_namespace, name) => secrets.get(name),
    generation,
  });
  if (problems.length === 0 && result.problems.length === 0) return result.config;
  problems.push(...result.problems.map((p) => p.message));
  throw new ConfigError(ConfigErrorCode.InvalidManifest, `config directory ${dir}:\n${problems.join('\n')}`);
}

/**
 * Writes the runtime config atomically (readers never see a half-written file), readable by its
 * owner only: it holds the submission passwords.
 */
export async function writeRuntimeConfig(path: string, config: RuntimeConfig): Promise<void> {
  const staging = `${path}.${process.pid}.tmp`;
  await writeFile(staging, `${JSON.stringify(config, null, 2)}\n`, { mode: 0o600 });
  // The mode of writeFile applies only to a new file; a stale staging file keeps its own.
  await chmod(staging, 0o600);
  await rename(staging, path);
}
