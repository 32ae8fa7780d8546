import { z } from 'zod';

/**
 * Kubernetes-style manifests that users write (the same files for `kubectl apply` and for
 * `petrel dev --config-dir`). This is the minimal form of docs/architecture.md; the operator
 * issue extends it and derives the CRD schema from it.
 */
export const API_GROUP = 'petrel.dev';
export const API_VERSION = `${API_GROUP}/v1alpha1`;

/** RFC 1035 host name, as written in manifests (a trailing dot is not accepted). */
const domainName = z
  .string()
  .min(1)
  .max(253)
  .regex(
    /^(?!-)[A-Za-z0-9-]{1,63}(?<!-)(\.(?!-)[A-Za-z0-9-]{1,63}(?<!-))+$/,
    'must be a fully qualified domain name',
  )
  .transform((s) => s.toLowerCase());

const metadata = z.object({
  name: z.string().min(1).max(253),
  namespace: z.string().min(1).optional(),
  labels: z.record(z.string(), z.string()).optional(),
  annotations: z.record(z.string(), z.string()).optional(),
});

export const InboundRouteSchema = z.strictObject({
  host: z.string().min(1),
  port: z.number().int().min(1).max(65535).default(25),
  protocol: z.enum(['smtp', 'lmtp']).default('smtp'),
});

export const SecretKeyRefSchema = z.strictObject({ name: z.string().min(1), key: z.string().min(1) });

export const SubmissionUserSchema = z.strictObject({
  name: z.string().min(1),
  passwordSecretRef: SecretKeyRefSchema,
  allowedSenders: z.array(z.string().min(1)).min(1),
});

/** Which authentication checks run on inbound mail (RFC 7208 SPF, RFC 6376 DKIM, RFC 7489 DMARC, RFC 8617 ARC). */
export const InboundChecksSchema = z.strictObject({
  spf: z.boolean().default(true),
  dkim: z.boolean().default(true),
  dmarc: z.boolean().default(true),
  arc: z.boolean().default(true),
  /** Honour a DMARC p=reject policy with a 550 (otherwise the result is only recorded). */
  dmarcReject: z.boolean().default(true),
});

export const GreylistingSchema = z.strictObject({
  enabled: z.boolean().default(false),
  /** How long a new (client, sender, recipient) triplet is deferred. */
  delaySeconds: z.number().int().min(1).max(86_400).default(300),
  /** How long a triplet that has passed is remembered. */
  expireHours: z
    .number()
    .int()
    .min(1)
    .max(24 * 90)
    .default(36),
});

export const TarpitSchema = z.strictObject({
  enabled: z.boolean().default(false),
  /** Delay before each RCPT reply to unauthenticated clients. */
  delayMs: z.number().int().min(0).max(60_000).default(2000),
});

export const InboundSchema = z.strictObject({
  routes: z.array(InboundRouteSchema).default([]),
  checks: InboundChecksSchema.default(InboundChecksSchema.parse({})),
  greylisting: GreylistingSchema.default(GreylistingSchema.parse({})),
  tarpit: TarpitSchema.default(TarpitSchema.parse({})),
});

/** RFC 6376 DKIM signing keys of outgoing mail (RSA and Ed25519 together, RFC 8463). */
export const DkimKeySchema = z.strictObject({
  /** s=: the key is published at <selector>._domainkey.<domain>. */
  selector: z
    .string()
    .regex(
      /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$/i,
      'must be DNS labels',
    ),
  algorithm: z.enum(['rsa-sha256', 'ed25519-sha256']),
  /** The PEM private key (PKCS#8 or PKCS#1), from a Secret. */
  privateKeySecretRef: SecretKeyRefSchema,
});

export const MailDomainSpecSchema = z.strictObject({
  domain: domainName,
  dkim: z.strictObject({ keys: z.array(DkimKeySchema).max(4).default([]) }).optional(),
  inbound: InboundSchema.optional(),
  submission: z.strictObject({ users: z.array(SubmissionUserSchema).default([]) }).optional(),
});

export const MailDomainSchema = z.object({
  apiVersion: z.literal(API_VERSION),
  kind: z.literal('MailDomain'),
  metadata,
  spec: MailDomainSpecSchema,
});
export type MailDomain = z.infer<typeof MailDomainSchema>;

export const SecretSchema = z.object({
  apiVersion: z.literal('v1'),
  kind: z.literal('Secret'),
  metadata,
  type: z.string().optional(),
  data: z.record(z.string(), z.string()).optional(),
  stringData: z.record(z.string(), z.string()).optional(),
});
export type Secret = z.infer<typeof SecretSchema>;
