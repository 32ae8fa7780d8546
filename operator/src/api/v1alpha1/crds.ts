import {
  API_GROUP,
  DeliveryPolicySpecSchema,
  DeliveryPolicyStatusSchema,
  MailDomainSpecSchema,
  MailDomainStatusSchema,
} from '@petrel/config';
import { stringify } from 'yaml';
import { z } from 'zod';

export const VERSION = 'v1alpha1';

type Schema = Record<string, unknown>;

/**
 * A zod schema as an apiextensions.k8s.io/v1 structural schema: the JSON Schema zod makes for its
 * input (defaults and descriptions included, CEL rules from the schemas' metadata), with what
 * structural schemas forbid taken out: `additionalProperties: false` (unknown fields are pruned
 * instead), `$schema`, and the pattern zod adds beside `format: date-time` (the format checks it).
 */
export function structural(schema: z.ZodType): Schema {
  const json = z.toJSONSchema(schema, {
    io: 'input',
    target: 'openapi-3.0',
    unrepresentable: 'throw',
  }) as Schema;
  return clean(json) as Schema;
}

function clean(node: unknown): unknown {
  if (Array.isArray(node)) return node.map(clean);
  if (node === null || typeof node !== 'object') return node;
  const out: Schema = {};
  for (const [key, value] of Object.entries(node as Schema)) {
    if (key === '$schema') continue;
    if (key === 'additionalProperties' && value === false) continue;
    // Defaults and enums are data, not schemas.
    out[key] =
      key === 'default' || key === 'enum' || key === 'x-kubernetes-validations' ? value : clean(value);
  }
  if (out['format'] === 'date-time') delete out['pattern'];
  // zod writes Number.MAX_SAFE_INTEGER as the bound of every int(); it says nothing here.
  if (out['maximum'] === Number.MAX_SAFE_INTEGER) delete out['maximum'];
  if (out['minimum'] === Number.MIN_SAFE_INTEGER) delete out['minimum'];
  return out;
}

/** The status `conditions` list merges per type under server-side apply (KEP-1623). */
function withConditionsMap(status: Schema): Schema {
  const properties = status['properties'] as Record<string, Schema> | undefined;
  const conditions = properties?.['conditions'];
  if (conditions) {
    conditions['x-kubernetes-list-type'] = 'map';
    conditions['x-kubernetes-list-map-keys'] = ['type'];
  }
  return status;
}

interface CrdSpec {
  kind: string;
  plural: string;
  singular: string;
  shortNames: string[];
  description: string;
  spec: z.ZodType;
  status: z.ZodType;
  columns: { name: string; type: string; jsonPath: string; description: string; priority?: number }[];
}

const conditionColumn = (type: string, name = type) => ({
  name,
  type: 'string',
  jsonPath: `.status.conditions[?(@.type=="${type}")].status`,
  description: `The ${type} condition`,
});

const CRDS: CrdSpec[] = [
  {
    kind: 'MailDomain',
    plural: 'maildomains',
    singular: 'maildomain',
    shortNames: ['md', 'mds'],
    description:
      "One of the organisation's mail domains: where its mail is handed on, who may submit mail from it, its DKIM keys, TLS certificate, DNS records and limits. The operator makes the keys and the certificate, publishes the runtime config the relay runs with, and reports in the status which DNS records to publish.",
    spec: MailDomainSpecSchema,
    status: MailDomainStatusSchema,
    columns: [
      { name: 'Domain', type: 'string', jsonPath: '.spec.domain', description: 'The mail domain' },
      conditionColumn('Ready'),
      conditionColumn('DKIMReady', 'DKIM'),
      conditionColumn('CertificateReady', 'Certificate'),
      conditionColumn('DNSVerified', 'DNS'),
      { name: 'Age', type: 'date', jsonPath: '.metadata.creationTimestamp', description: 'Age' },
    ],
  },
  {
    kind: 'DeliveryPolicy',
    plural: 'deliverypolicies',
    singular: 'deliverypolicy',
    shortNames: ['dp', 'dps'],
    description:
      'Traffic shaping for destinations, matched by recipient domain or by MX host suffix (provider roll-up): rate, connections, messages per connection, TLS requirement, retry schedule, adaptive backoff, relay host. The limits hold for the cluster as a whole.',
    spec: DeliveryPolicySpecSchema,
    status: DeliveryPolicyStatusSchema,
    columns: [
      {
        name: 'Domains',
        type: 'string',
        jsonPath: '.spec.match.domains',
        description: 'Recipient domains matched',
      },
      {
        name: 'MX suffixes',
        type: 'string',
        jsonPath: '.spec.match.mxHostSuffixes',
        description: 'MX host suffixes matched',
      },
      { name: 'Rate', type: 'number', jsonPath: '.spec.ratePerSecond', description: 'Messages per second' },
      conditionColumn('Ready'),
      { name: 'Age', type: 'date', jsonPath: '.metadata.creationTimestamp', description: 'Age' },
    ],
  },
];

/** The CustomResourceDefinitions of petrel.dev, generated from the schemas the services validate with. */
export function crdManifests(): Schema[] {
  return CRDS.map((crd) => ({
    apiVersion: 'apiextensions.k8s.io/v1',
    kind: 'CustomResourceDefinition',
    metadata: {
      name: `${crd.plural}.${API_GROUP}`,
      labels: { 'app.kubernetes.io/part-of': 'petrel', 'app.kubernetes.io/component': 'crd' },
    },
    spec: {
      group: API_GROUP,
      names: {
        kind: crd.kind,
        listKind: `${crd.kind}List`,
        plural: crd.plural,
        singular: crd.singular,
        shortNames: crd.shortNames,
        categories: ['petrel'],
      },
      scope: 'Namespaced',
      versions: [
        {
          name: VERSION,
          served: true,
          storage: true,
          subresources: { status: {} },
          additionalPrinterColumns: crd.columns,
          schema: {
            openAPIV3Schema: {
              type: 'object',
              description: crd.description,
              required: ['spec'],
              properties: {
                apiVersion: { type: 'string', description: `${API_GROUP}/${VERSION}` },
                kind: { type: 'string', description: crd.kind },
                metadata: { type: 'object' },
                spec: { ...structural(crd.spec), description: `The desired state of the ${crd.kind}.` },
                status: {
                  ...withConditionsMap(structural(crd.status)),
                  description: `What the operator made of the ${crd.kind}, written by the operator.`,
                },
              },
            },
          },
        },
      ],
    },
  }));
}

const HEADER =
  '# Generated by `npm run crds:gen` from the zod schemas in packages/config/src/manifests.ts; do not edit.\n';

/** One CRD as the committed file holds it. */
export function crdYaml(crd: Schema): string {
  return `${HEADER}${stringify(crd, { lineWidth: 0 })}`;
}

/** Both CRDs as one multi-document stream (`petrel crds | kubectl apply -f -`). */
export function crdsYaml(): string {
  return crdManifests()
    .map((crd) => stringify(crd, { lineWidth: 0 }))
    .join('---\n');
}

/** File name of a CRD under operator/crds (kubebuilder's convention: <group>_<plural>.yaml). */
export function crdFileName(crd: Schema): string {
  const spec = crd['spec'] as { group: string; names: { plural: string } };
  return `${spec.group}_${spec.names.plural}.yaml`;
}
