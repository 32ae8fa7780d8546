import { z } from 'zod';
import { parseDuration } from './duration.ts';

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

/** A duration as people write it: 30s, 5m, 4h, 2d. */
const duration = z.string().refine((s) => {
  try {
    parseDuration(s);
    return true;
  } catch {
    return false;
  }
}, 'must be a duration such as 30s, 5m, 4h or 2d');

/** What a tenant may send (fairness between MailDomains on one relay). */
export const OutboundSchema = z.strictObject({
  /** Messages per second leaving the relay from this domain's senders, for the cluster as a whole. */
  ratePerSecond: z.number().positive().max(100_000).optional(),
  /** How long undeliverable mail from this domain is retried before it bounces (default 5d). */
  queueLifetime: duration.optional(),
});

/** The delivery events a webhook may subscribe to (docs/webhooks.md); ACCEPTED and PURGED are not offered. */
export const WEBHOOK_EVENTS = ['delivered', 'deferred', 'bounced', 'expired', 'suppressed'] as const;
export type WebhookEvent = (typeof WEBHOOK_EVENTS)[number];

/** One webhook subscription of a MailDomain: events POSTed to `url`, signed with the Secret's value. */
export const WebhookSubscriptionSchema = z.strictObject({
  /** Unique within the MailDomain; part of the subscription's id `<namespace>/<maildomain>/<name>`. */
  name: z
    .string()
    .regex(/^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/, 'must be a DNS label (a-z, 0-9 and -, at most 63)'),
  url: z.url({ protocol: /^https?$/, error: 'must be an http:// or https:// URL' }),
  events: z
    .array(z.enum(WEBHOOK_EVENTS, { error: `must be one of ${WEBHOOK_EVENTS.join(', ')}` }))
    .min(1, `must name at least one event (${WEBHOOK_EVENTS.join(', ')})`)
    .refine((events) => new Set(events).size === events.length, 'must not name an event twice'),
  /** The HMAC-SHA256 signing secret (Petrel-Signature header). */
  secretRef: SecretKeyRefSchema,
});

export const WebhooksSchema = z
  .array(WebhookSubscriptionSchema)
  .max(20)
  .superRefine((hooks, ctx) => {
    const seen = new Set<string>();
    hooks.forEach((hook, index) => {
      if (seen.has(hook.name)) {
        ctx.addIssue({
          code: 'custom',
          message: `webhook name ${hook.name} is used twice; names must be unique within the MailDomain`,
          path: [index, 'name'],
        });
      }
      seen.add(hook.name);
    });
  });

export const MailDomainSpecSchema = z.strictObject({
  domain: domainName,
  outbound: OutboundSchema.optional(),
  dkim: z.strictObject({ keys: z.array(DkimKeySchema).max(4).default([]) }).optional(),
  inbound: InboundSchema.optional(),
  submission: z.strictObject({ users: z.array(SubmissionUserSchema).default([]) }).optional(),
  webhooks: WebhooksSchema.optional(),
});

/** A petrel.dev/v1alpha1 resource of `kind` with this spec. */
function resource<K extends string, S extends z.ZodType>(kind: K, spec: S) {
  return z.object({ apiVersion: z.literal(API_VERSION), kind: z.literal(kind), metadata, spec });
}

export const MailDomainSchema = resource('MailDomain', MailDomainSpecSchema);
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

/** "example.com" or "*.example.com" (every subdomain, not the domain itself). */
const domainPattern = z
  .string()
  .regex(
    /^(\*\.)?(?!-)[A-Za-z0-9-]{1,63}(?<!-)(\.(?!-)[A-Za-z0-9-]{1,63}(?<!-))+$/,
    'must be a domain name, or *. followed by one',
  )
  .transform((s) => s.toLowerCase());

/**
 * Traffic shaping for destinations (docs/delivery.md, "Delivery policies"). Matched by recipient
 * domain (limits per domain) or by MX host suffix (provider roll-up: one set of limits for every
 * domain whose MX hosts are under the suffix). Limits hold for the cluster as a whole.
 */
export const DeliveryPolicySpecSchema = z
  .strictObject({
    match: z.strictObject({
      /** Recipient domains ("example.com", "*.example.com"); the limits apply to each domain. */
      domains: z.array(domainPattern).default([]),
      /** MX host suffixes ("google.com"); the limits apply to all such domains together. */
      mxHostSuffixes: z.array(domainName).default([]),
    }),
    /** Messages per second (transactions started), for the cluster as a whole. */
    ratePerSecond: z.number().positive().max(100_000).optional(),
    /** Concurrent connections (SMTP sessions in use), for the cluster as a whole. */
    maxConnections: z.number().int().min(1).max(1000).optional(),
    /** Transactions on one connection before it is closed and a new one opened. */
    messagesPerConnection: z.number().int().min(1).max(100_000).optional(),
    /**
     * opportunistic: STARTTLS when offered (default); encrypted: STARTTLS required, any certificate;
     * verified: STARTTLS required with a certificate valid for the MX host name.
     */
    tls: z.enum(['opportunistic', 'encrypted', 'verified']).default('opportunistic'),
    /** Retry delays for these destinations (the last repeats), e.g. [1m, 5m, 30m, 2h]. */
    retryDelays: z.array(duration).min(1).max(50).optional(),
    /** Lower the rate after throttling replies (421, 4.7.x) and recover it gradually. */
    adaptive: z.boolean().default(true),
    /** Hand these destinations' mail to this relay host instead of their MX hosts. */
    relay: z
      .strictObject({
        host: z.string().min(1),
        port: z.number().int().min(1).max(65535).default(25),
        /** SMTP AUTH at the relay host (only over TLS). */
        auth: z
          .strictObject({ username: z.string().min(1), passwordSecretRef: SecretKeyRefSchema })
          .optional(),
      })
      .optional(),
  })
  .refine((s) => s.match.domains.length + s.match.mxHostSuffixes.length > 0, {
    message: 'match needs at least one domain or MX host suffix',
    path: ['match'],
  })
  .refine((s) => s.relay === undefined || s.match.mxHostSuffixes.length === 0, {
    message: 'a relay host replaces MX lookup, so it cannot be combined with mxHostSuffixes',
    path: ['relay'],
  });

export const DeliveryPolicySchema = resource('DeliveryPolicy', DeliveryPolicySpecSchema);
export type DeliveryPolicy = z.infer<typeof DeliveryPolicySchema>;
