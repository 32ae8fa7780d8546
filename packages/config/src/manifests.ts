import { z } from 'zod';

/**
 * Kubernetes-style manifests that users write (the same files for `kubectl apply` and for
 * `petrel dev --config-dir`). These schemas are the one source of truth of the petrel.dev/v1alpha1
 * API: operator/src/api/v1alpha1/crds.ts derives the CRDs from them, so every pattern here must
 * be valid RE2 (no lookaround, no flags: Kubernetes checks `pattern` with Go's regexp), every
 * description is what `kubectl explain` shows, and every cross-field check carries its CEL twin
 * (`x-kubernetes-validations`, see `crossField`).
 */
export const API_GROUP = 'petrel.dev';
export const API_VERSION = `${API_GROUP}/v1alpha1`;

/**
 * The `reason` of a CEL rule, i.e. how the apiserver words the error. Not FieldValueDuplicate: with
 * it the apiserver prints only "Duplicate value: ..." and drops the rule's message.
 */
export type CelReason = 'FieldValueInvalid' | 'FieldValueForbidden' | 'FieldValueRequired';

/** One `x-kubernetes-validations` entry of a CRD schema. */
export interface CelValidation {
  rule: string;
  message: string;
  fieldPath?: string;
  reason?: CelReason;
}

/** A check across fields of one object, for zod and (as CEL over `self`) for the Kubernetes apiserver. */
interface CrossFieldRule<T> {
  check: (value: T) => boolean;
  cel: string;
  message: string;
  /** The field the error is reported on, relative to the object. */
  path?: readonly string[];
  reason?: CelReason;
}

const CEL_KEY = 'x-kubernetes-validations';

/** The CEL rules of a schema as metadata, which z.toJSONSchema copies into the JSON Schema. */
function celMeta(rules: readonly CelValidation[]): Record<string, unknown> {
  return { [CEL_KEY]: rules };
}

/**
 * Adds each rule as a zod refinement and as a CEL rule in one step, so the two cannot be
 * declared apart (crds.apiserver.test.ts checks that they judge alike).
 */
function crossField<S extends z.ZodType>(schema: S, ...rules: CrossFieldRule<z.output<S>>[]): S {
  let out = schema;
  for (const r of rules) {
    out = out.refine(r.check, { message: r.message, ...(r.path ? { path: [...r.path] } : {}) });
  }
  return out.meta(
    celMeta(
      rules.map((r) => ({
        rule: r.cel,
        message: r.message,
        ...(r.path ? { fieldPath: `.${r.path.join('.')}` } : {}),
        ...(r.reason ? { reason: r.reason } : {}),
      })),
    ),
  );
}

/** Every element appears once (by `key`); CEL's twin is `self.all(a, self.exists_one(b, b.key == a.key))`. */
function unique<T>(values: readonly T[], key: (value: T) => unknown = (v) => v): boolean {
  return new Set(values.map(key)).size === values.length;
}

// A DNS label: 1-63 letters, digits and hyphens, neither first nor last a hyphen. Spelled out
// with a bounded repeat because RE2 has no lookbehind.
const LABEL = '[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?';
const LOWER_LABEL = '[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?';
const FQDN = new RegExp(`^${LABEL}(\\.${LABEL})+$`);

/** RFC 1035 host name, as written in manifests (a trailing dot is not accepted). */
const domainName = z
  .string()
  .min(1)
  .max(253)
  .regex(FQDN, 'must be a fully qualified domain name')
  .transform((s) => s.toLowerCase());

/** A Kubernetes object name (RFC 1123 subdomain), e.g. of a Secret. */
const objectName = z
  .string()
  .min(1)
  .max(253)
  .regex(
    new RegExp(`^${LOWER_LABEL}(\\.${LOWER_LABEL})*$`),
    'must be a Kubernetes object name (lower-case letters, digits, - and .)',
  );

const metadata = z.object({
  name: z.string().min(1).max(253),
  namespace: z.string().min(1).optional(),
  labels: z.record(z.string(), z.string()).optional(),
  annotations: z.record(z.string(), z.string()).optional(),
});

// parseDuration's grammar (duration.ts) as a regular expression the apiserver can check too:
// digits, an optional unit, surrounding ASCII white space; zero is refused like parseDuration does.
const DURATION = /^[ \t\n\v\f\r]*0*[1-9][0-9]*(ms|s|m|h|d)?[ \t\n\v\f\r]*$/;

/** A duration as people write it: 30s, 5m, 4h, 2d. */
const duration = z.string().max(32).regex(DURATION, 'must be a duration such as 30s, 5m, 4h or 2d');

export const InboundRouteSchema = z
  .strictObject({
    host: z
      .string()
      .min(1)
      .describe('Host name or IP address of the SMTP or LMTP server that receives the mail.'),
    port: z.number().int().min(1).max(65535).default(25).describe('TCP port of that server. Default 25.'),
    protocol: z
      .enum(['smtp', 'lmtp'])
      .default('smtp')
      .describe('smtp (RFC 5321) or lmtp (RFC 2033, e.g. a Dovecot or Cyrus mail store). Default smtp.'),
  })
  .describe('A server that mail received for the domain is handed on to.');

export const SecretKeyRefSchema = z
  .strictObject({
    name: z.string().min(1).max(253).describe('Name of the Secret, in the namespace of this resource.'),
    key: z.string().min(1).max(253).describe('Key within the Secret.'),
  })
  .describe('A key of a Secret in the namespace of this resource.');

export const SubmissionUserSchema = z
  .strictObject({
    name: z.string().min(1).describe('The user name of SMTP AUTH (PLAIN or LOGIN), e.g. app@example.org.'),
    passwordSecretRef: SecretKeyRefSchema.describe('The Secret key holding the password.'),
    allowedSenders: z
      .array(z.string().min(1))
      .min(1)
      .describe(
        'Envelope senders and From addresses this user may send as: addresses, or *@domain for every address of a domain.',
      ),
  })
  .describe('A user of the submission ports (587 with STARTTLS, 465 with TLS).');

/** Which authentication checks run on inbound mail (RFC 7208 SPF, RFC 6376 DKIM, RFC 7489 DMARC, RFC 8617 ARC). */
export const InboundChecksSchema = z
  .strictObject({
    spf: z
      .boolean()
      .default(true)
      .describe('Check the SPF record of the sending domain (RFC 7208). Default true.'),
    dkim: z.boolean().default(true).describe('Verify DKIM signatures (RFC 6376). Default true.'),
    dmarc: z
      .boolean()
      .default(true)
      .describe('Evaluate the DMARC policy of the From domain (RFC 7489). Default true.'),
    arc: z.boolean().default(true).describe('Evaluate ARC chains of forwarders (RFC 8617). Default true.'),
    dmarcReject: z
      .boolean()
      .default(true)
      .describe(
        'Refuse (550) mail that fails DMARC when the domain publishes p=reject; when false the result is only recorded. Default true.',
      ),
  })
  .describe(
    'The authentication checks run on mail received for this domain; results go into Authentication-Results.',
  );

export const GreylistingSchema = z
  .strictObject({
    enabled: z.boolean().default(false).describe('Greylist unauthenticated MX clients. Default false.'),
    delaySeconds: z
      .number()
      .int()
      .min(1)
      .max(86_400)
      .default(300)
      .describe(
        'Seconds a new (client, sender, recipient) triplet is deferred before it is accepted. Default 300.',
      ),
    expireHours: z
      .number()
      .int()
      .min(1)
      .max(24 * 90)
      .default(36)
      .describe('Hours a triplet that has passed is remembered. Default 36.'),
  })
  .describe('Greylisting: defer the first attempt of unknown senders (most spam software does not retry).');

export const TarpitSchema = z
  .strictObject({
    enabled: z
      .boolean()
      .default(false)
      .describe('Delay the RCPT replies to unauthenticated clients. Default false.'),
    delayMs: z
      .number()
      .int()
      .min(0)
      .max(60_000)
      .default(2000)
      .describe('Milliseconds before each RCPT reply. Default 2000.'),
  })
  .describe('Tarpitting: slow down unauthenticated clients that send to many recipients.');

export const InboundSchema = z
  .strictObject({
    routes: z
      .array(InboundRouteSchema)
      .default([])
      .describe('Where mail received for the domain is handed on, tried in order. Default none.'),
    checks: InboundChecksSchema.default(InboundChecksSchema.parse({})),
    greylisting: GreylistingSchema.default(GreylistingSchema.parse({})),
    tarpit: TarpitSchema.default(TarpitSchema.parse({})),
  })
  .describe('Mail received for the domain on port 25 (the relay is its MX).');

export const DKIM_ALGORITHMS = ['rsa-sha256', 'ed25519-sha256'] as const;

const SELECTOR = new RegExp(`^${LABEL}(\\.${LABEL})*$`);

/** RFC 6376 DKIM signing keys of outgoing mail (RSA and Ed25519 together, RFC 8463). */
export const DkimKeySchema = z
  .strictObject({
    selector: z
      .string()
      .max(253)
      .regex(SELECTOR, 'must be DNS labels')
      .describe('The s= tag: the public key is published at <selector>._domainkey.<domain>.'),
    algorithm: z
      .enum(DKIM_ALGORITHMS)
      .describe('The a= tag: rsa-sha256 (RFC 6376) or ed25519-sha256 (RFC 8463).'),
    privateKeySecretRef: SecretKeyRefSchema.describe(
      'The Secret key holding the PEM private key (PKCS#8 or PKCS#1).',
    ),
  })
  .describe('A DKIM signing key brought by the owner.');

export const DkimGenerateSchema = z
  .strictObject({
    algorithms: crossField(
      z
        .array(z.enum(DKIM_ALGORITHMS))
        .min(1)
        .max(DKIM_ALGORITHMS.length)
        .default(['rsa-sha256'])
        .describe(
          'The key types to generate, each signing every message: rsa-sha256 (RSA 2048) and/or ed25519-sha256 (RFC 8463). Default [rsa-sha256].',
        ),
      {
        check: (a) => unique(a),
        cel: 'self.all(a, self.exists_one(b, b == a))',
        message: 'must not name an algorithm twice',
      },
    ),
    selectorPrefix: z
      .string()
      .max(40)
      .regex(new RegExp(`^${LOWER_LABEL}$`), 'must be a DNS label of lower-case letters, digits and -')
      .default('petrel')
      .describe(
        'Start of the generated selectors, to which the operator adds the algorithm and the key generation: a DNS label of at most 40 characters. Default petrel.',
      ),
    keyGeneration: z
      .number()
      .int()
      .min(1)
      .default(1)
      .describe(
        'Generation of the keys, part of their selectors. Raising it rotates the keys now: new keys are generated and the current ones retire. Default 1.',
      ),
    rotateEvery: duration
      .optional()
      .describe(
        'Rotate the keys automatically this long after they became active (e.g. 90d). Default: never.',
      ),
    activateAfter: duration
      .optional()
      .describe(
        'A new key of a rotation signs once DNS shows its record; if set, it also signs after this long (e.g. 2d) whatever DNS shows. Default: only when DNS shows it.',
      ),
    retireAfter: duration
      .default('7d')
      .describe(
        'How long a replaced key stays published in DNS (and its Secret is kept), so mail signed with it still verifies. Default 7d.',
      ),
  })
  .describe('Keys the operator generates, stores in Secrets and rotates.');

export const DkimSchema = crossField(
  z
    .strictObject({
      keys: crossField(
        z
          .array(DkimKeySchema)
          .min(1, 'must list at least one key (leave keys out to have the operator generate them)')
          .max(4)
          .optional()
          .describe('Keys the owner brings, each in a Secret; all of them sign. At most 4.'),
        {
          check: (keys) => keys === undefined || unique(keys, (k) => k.selector.toLowerCase()),
          cel: 'self.all(a, self.exists_one(b, b.selector.lowerAscii() == a.selector.lowerAscii()))',
          message: 'selectors must be unique',
        },
      ),
      generate: DkimGenerateSchema.optional(),
    })
    .describe(
      'DKIM signing of outgoing mail (RFC 6376). Either keys (the owner brings them) or generate (the operator makes and rotates them); {} means generated keys with the defaults. Without dkim, mail is not signed.',
    ),
  {
    check: (d) => d.keys === undefined || d.generate === undefined,
    cel: '!(has(self.keys) && has(self.generate))',
    message: 'keys and generate cannot both be given: bring your own keys or let the operator generate them',
    reason: 'FieldValueForbidden',
  },
);

export const TLS_MODES = ['Auto', 'CertManager', 'Operator', 'Secret'] as const;

export const IssuerRefSchema = z
  .strictObject({
    name: z.string().min(1).max(253).describe('Name of the Issuer or ClusterIssuer.'),
    kind: z
      .enum(['Issuer', 'ClusterIssuer'])
      .default('Issuer')
      .describe('Issuer (in the namespace of this MailDomain) or ClusterIssuer. Default Issuer.'),
    group: z
      .string()
      .min(1)
      .max(253)
      .default('cert-manager.io')
      .describe('API group of the issuer. Default cert-manager.io.'),
  })
  .describe('The cert-manager issuer that signs the certificate.');

export const TlsSchema = crossField(
  z
    .strictObject({
      mode: z
        .enum(TLS_MODES)
        .default('Auto')
        .describe(
          "Where the certificate comes from. Auto: a cert-manager Certificate when the cert-manager API is served, else the operator's own CA. CertManager: a cert-manager Certificate from issuerRef. Operator: the operator's own CA. Secret: an existing kubernetes.io/tls Secret (secretName). Default Auto.",
        ),
      issuerRef: IssuerRefSchema.optional().describe(
        'The cert-manager issuer that signs the certificate: required with mode CertManager, used by mode Auto when the cert-manager API is served.',
      ),
      secretName: objectName
        .optional()
        .describe('An existing kubernetes.io/tls Secret holding the certificate and key (mode Secret only).'),
      renewBefore: duration
        .default('30d')
        .describe("Renew a certificate of the operator's CA this long before it expires. Default 30d."),
    })
    .describe(
      "The TLS certificate of the relay's host names for this domain (MX and submission host names), used for STARTTLS on 25 and 587 and TLS on 465.",
    ),
  {
    check: (t) => t.mode !== 'CertManager' || t.issuerRef !== undefined,
    cel: "self.mode != 'CertManager' || has(self.issuerRef)",
    message:
      'mode CertManager needs issuerRef (the cert-manager Issuer or ClusterIssuer that signs the certificate)',
    path: ['issuerRef'],
    reason: 'FieldValueRequired',
  },
  {
    check: (t) => t.mode !== 'Secret' || t.secretName !== undefined,
    cel: "self.mode != 'Secret' || has(self.secretName)",
    message: 'mode Secret needs secretName (an existing kubernetes.io/tls Secret)',
    path: ['secretName'],
    reason: 'FieldValueRequired',
  },
  {
    check: (t) => t.secretName === undefined || t.mode === 'Secret',
    cel: "!has(self.secretName) || self.mode == 'Secret'",
    message: 'secretName is only used with mode Secret',
    path: ['secretName'],
    reason: 'FieldValueForbidden',
  },
);

export const HostnamesSchema = z
  .strictObject({
    mx: domainName
      .optional()
      .describe('The host name published in the MX record of the domain. Default mx.<domain>.'),
    submission: domainName
      .optional()
      .describe(
        'The host name mail clients and applications submit to (ports 587 and 465). Default smtp.<domain>.',
      ),
  })
  .describe("Host names of the relay for this domain; both are in the domain's TLS certificate.");

// A DMARC report address: mailto:, one address, an optional size limit (RFC 7489 6.2). No
// commas or semicolons, which would break the record.
const DMARC_URI = /^mailto:[^\s@,;!]+@[A-Za-z0-9]([A-Za-z0-9.-]{0,251}[A-Za-z0-9])?(![0-9]+[kmgt]?)?$/;

export const DmarcSchema = z
  .strictObject({
    policy: z
      .enum(['none', 'quarantine', 'reject'])
      .default('none')
      .describe(
        'The p= tag: what receivers do with mail that fails DMARC. none (monitor), quarantine or reject. Default none.',
      ),
    rua: z
      .array(z.string().max(320).regex(DMARC_URI, 'must be a mailto: URI, e.g. mailto:dmarc@example.org'))
      .max(10)
      .optional()
      .describe('The rua= tag: mailto: URIs that receive aggregate reports. Default none.'),
  })
  .describe('The DMARC record (_dmarc.<domain> TXT, RFC 7489) shown in status.dnsRecords.');

export const MtaStsSchema = z
  .strictObject({
    mode: z
      .enum(['none', 'testing', 'enforce'])
      .default('testing')
      .describe(
        'The policy mode (RFC 8461): none, testing (senders report failures but deliver) or enforce (senders deliver only over verified TLS). Default testing.',
      ),
    maxAgeSeconds: z
      .number()
      .int()
      .min(1)
      .max(31_557_600)
      .default(604_800)
      .describe(
        'The max_age of the policy in seconds: how long senders cache it. Default 604800 (one week).',
      ),
  })
  .describe(
    'The MTA-STS policy (RFC 8461): the _mta-sts.<domain> TXT record and the policy file in status.mtaStsPolicy, to serve at https://mta-sts.<domain>/.well-known/mta-sts.txt.',
  );

export const DnsSchema = z
  .strictObject({
    spf: z
      .string()
      .max(1024)
      .regex(/^v=spf1( +[!-~]+)* *$/, 'must be an SPF record: v=spf1 followed by mechanisms')
      .optional()
      .describe(
        'The whole SPF TXT value for the domain, e.g. "v=spf1 mx include:_spf.example.net -all". Default: computed by the operator.',
      ),
    dmarc: DmarcSchema.default(DmarcSchema.parse({})),
    mtaSts: MtaStsSchema.default(MtaStsSchema.parse({})),
    verify: z
      .boolean()
      .default(true)
      .describe(
        'Periodically check that DNS shows the records (status.dnsRecords[].verified and condition DNSVerified). Default true.',
      ),
  })
  .describe(
    'The DNS records the owner of the domain publishes (MX, SPF, DKIM, DMARC, MTA-STS), listed with their values in status.dnsRecords.',
  );

/** What a tenant may send (fairness between MailDomains on one relay). */
export const OutboundSchema = z
  .strictObject({
    ratePerSecond: z
      .number()
      .positive()
      .max(100_000)
      .optional()
      .describe(
        "Messages per second leaving the relay from this domain's senders, for the cluster as a whole. Default unlimited.",
      ),
    queueLifetime: duration
      .optional()
      .describe(
        'How long undeliverable mail from this domain is retried before it bounces, e.g. 2d. Default 5d.',
      ),
  })
  .describe('Limits on mail sent from this domain.');

/** The delivery events a webhook may subscribe to (docs/webhooks.md); ACCEPTED and PURGED are not offered. */
export const WEBHOOK_EVENTS = ['delivered', 'deferred', 'bounced', 'expired', 'suppressed'] as const;
export type WebhookEvent = (typeof WEBHOOK_EVENTS)[number];

const WEBHOOK_URL_ERROR = 'must be an http:// or https:// URL';

/** One webhook subscription of a MailDomain: events POSTed to `url`, signed with the Secret's value. */
export const WebhookSubscriptionSchema = z
  .strictObject({
    name: z
      .string()
      .max(63)
      .regex(/^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/, 'must be a DNS label (a-z, 0-9 and -, at most 63)')
      .describe(
        "Unique within the MailDomain; the subscription's id is <namespace>/<maildomain>/<name>. A DNS label.",
      ),
    // The pattern is what the apiserver checks too; URL parsing then applies zod's full rules.
    url: z
      .string()
      .max(2048)
      .regex(/^[Hh][Tt][Tt][Pp][Ss]?:\/\/[^\s/?#]+([/?#][^\s]*)?$/, { error: WEBHOOK_URL_ERROR, abort: true })
      .pipe(z.url({ protocol: /^https?$/, error: WEBHOOK_URL_ERROR }))
      .meta(celMeta([{ rule: 'isURL(self)', message: WEBHOOK_URL_ERROR }]))
      .describe('Where the events are POSTed as JSON: an http:// or https:// URL.'),
    events: crossField(
      z
        .array(z.enum(WEBHOOK_EVENTS, { error: `must be one of ${WEBHOOK_EVENTS.join(', ')}` }))
        .min(1, `must name at least one event (${WEBHOOK_EVENTS.join(', ')})`)
        .max(WEBHOOK_EVENTS.length)
        .describe(`The delivery events to send: ${WEBHOOK_EVENTS.join(', ')}.`),
      {
        check: (events) => unique(events),
        cel: 'self.all(e, self.exists_one(o, o == e))',
        message: 'must not name an event twice',
      },
    ),
    secretRef: SecretKeyRefSchema.describe(
      'The Secret key holding the HMAC-SHA256 signing secret of the Petrel-Signature header (at least 16 characters).',
    ),
  })
  .describe('A webhook subscription: delivery events of mail from or to the domain (docs/webhooks.md).');

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
  })
  .meta(
    celMeta([
      {
        rule: 'self.all(h, self.exists_one(o, o.name == h.name))',
        message: 'webhook names must be unique within the MailDomain',
      },
    ]),
  )
  .describe('Webhook subscriptions of this domain (at most 20).');

export const MailDomainSpecSchema = z
  .strictObject({
    domain: domainName.describe(
      'The domain, e.g. example.org: mail for it is received, mail from it is sent.',
    ),
    hostnames: HostnamesSchema.optional(),
    outbound: OutboundSchema.optional(),
    dkim: DkimSchema.optional(),
    tls: TlsSchema.default(TlsSchema.parse({})),
    dns: DnsSchema.default(DnsSchema.parse({})),
    inbound: InboundSchema.optional(),
    submission: z
      .strictObject({
        users: z.array(SubmissionUserSchema).default([]).describe('The users; each password is in a Secret.'),
      })
      .optional()
      .describe('Users that send mail through the relay (SMTP AUTH on 587 and 465).'),
    webhooks: WebhooksSchema.optional(),
  })
  .describe('The desired state of the MailDomain.');

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
  .max(255)
  .regex(new RegExp(`^(\\*\\.)?${LABEL}(\\.${LABEL})+$`), 'must be a domain name, or *. followed by one')
  .transform((s) => s.toLowerCase());

const RelayHostSchema = z
  .strictObject({
    host: z.string().min(1).describe('Host name or IP address of the relay host.'),
    port: z.number().int().min(1).max(65535).default(25).describe('TCP port of the relay host. Default 25.'),
    auth: z
      .strictObject({
        username: z.string().min(1).describe('The SMTP AUTH user name.'),
        passwordSecretRef: SecretKeyRefSchema.describe('The Secret key holding the password.'),
      })
      .optional()
      .describe('SMTP AUTH at the relay host (used only over TLS).'),
  })
  .describe("Hand these destinations' mail to this relay host instead of their MX hosts.");

/**
 * Traffic shaping for destinations (docs/delivery.md, "Delivery policies"). Matched by recipient
 * domain (limits per domain) or by MX host suffix (provider roll-up: one set of limits for every
 * domain whose MX hosts are under the suffix). Limits hold for the cluster as a whole.
 */
export const DeliveryPolicySpecSchema = crossField(
  z.strictObject({
    match: z
      .strictObject({
        // prefault, not default: the JSON Schema of a transforming element type keeps only an
        // input-side default, and the API server should default the field just as zod does.
        domains: z
          .array(domainPattern)
          .prefault([])
          .describe(
            'Recipient domains ("example.com", or "*.example.com" for its subdomains); the limits apply to each domain.',
          ),
        mxHostSuffixes: z
          .array(domainName)
          .prefault([])
          .describe(
            'MX host suffixes (e.g. google.com): the limits apply to every domain whose MX hosts are under a suffix, together.',
          ),
      })
      .describe('The destinations this policy applies to: at least one domain or MX host suffix.'),
    ratePerSecond: z
      .number()
      .positive()
      .max(100_000)
      .optional()
      .describe('Messages per second (transactions started), for the cluster as a whole. Default unlimited.'),
    maxConnections: z
      .number()
      .int()
      .min(1)
      .max(1000)
      .optional()
      .describe(
        'Concurrent connections (SMTP sessions in use), for the cluster as a whole. Default unlimited.',
      ),
    messagesPerConnection: z
      .number()
      .int()
      .min(1)
      .max(100_000)
      .optional()
      .describe(
        'Transactions on one connection before it is closed and a new one opened. Default unlimited.',
      ),
    tls: z
      .enum(['opportunistic', 'encrypted', 'verified'])
      .default('opportunistic')
      .describe(
        'opportunistic: STARTTLS when offered; encrypted: STARTTLS required, any certificate; verified: STARTTLS required with a certificate valid for the MX host name. Default opportunistic.',
      ),
    retryDelays: z
      .array(duration)
      .min(1)
      .max(50)
      .optional()
      .describe(
        "Retry delays for these destinations, the last one repeating, e.g. [1m, 5m, 30m, 2h]. Default: the relay's.",
      ),
    adaptive: z
      .boolean()
      .default(true)
      .describe(
        'Lower the rate after throttling replies (421, 4.7.x) and recover it gradually. Default true.',
      ),
    relay: RelayHostSchema.optional(),
  }),
  {
    check: (s) => s.match.domains.length + s.match.mxHostSuffixes.length > 0,
    cel: '(has(self.match.domains) ? size(self.match.domains) : 0) + (has(self.match.mxHostSuffixes) ? size(self.match.mxHostSuffixes) : 0) > 0',
    message: 'match needs at least one domain or MX host suffix',
    path: ['match'],
    reason: 'FieldValueRequired',
  },
  {
    check: (s) => s.relay === undefined || s.match.mxHostSuffixes.length === 0,
    cel: '!has(self.relay) || !has(self.match.mxHostSuffixes) || size(self.match.mxHostSuffixes) == 0',
    message: 'a relay host replaces MX lookup, so it cannot be combined with mxHostSuffixes',
    path: ['relay'],
    reason: 'FieldValueForbidden',
  },
).describe('The desired state of the DeliveryPolicy: which destinations, and their limits.');

export const DeliveryPolicySchema = resource('DeliveryPolicy', DeliveryPolicySpecSchema);
export type DeliveryPolicy = z.infer<typeof DeliveryPolicySchema>;

// ---- status (written by the operator through the status subresource) ----

const timestamp = z.iso.datetime();

/** metav1.Condition (KEP-1623), with the apiserver's own limits. */
export const ConditionSchema = z
  .strictObject({
    type: z
      .string()
      .max(316)
      .regex(
        /^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*\/)?(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])$/,
      )
      .describe(
        'Type of the condition in CamelCase: Ready, DKIMReady, CertificateReady, ConfigPublished, DNSVerified.',
      ),
    status: z.enum(['True', 'False', 'Unknown']).describe('True, False or Unknown.'),
    observedGeneration: z
      .number()
      .int()
      .min(0)
      .optional()
      .describe('The .metadata.generation the condition was computed from.'),
    lastTransitionTime: timestamp.describe('When the status last changed.'),
    reason: z
      .string()
      .min(1)
      .max(1024)
      .regex(/^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$/)
      .describe('Why the condition is in this status, in CamelCase (one of a fixed set per type).'),
    message: z.string().max(32_768).describe('Details for people; may be empty.'),
  })
  .describe('The state of one aspect of the resource.');
export type Condition = z.infer<typeof ConditionSchema>;

const conditions = z
  .array(ConditionSchema)
  .max(16)
  .meta({ 'x-kubernetes-list-type': 'map', 'x-kubernetes-list-map-keys': ['type'] })
  .describe('Ready, and one condition per concern.');

const observedGeneration = z
  .number()
  .int()
  .min(0)
  .describe(
    'The .metadata.generation the operator last acted on; older means the status is not yet up to date.',
  );

const configGeneration = z
  .number()
  .int()
  .min(0)
  .describe(
    'The generation of the runtime config (read by ingress and delivery) that first included this spec.',
  );

export const DnsRecordSchema = z
  .strictObject({
    purpose: z.enum(['MX', 'SPF', 'DKIM', 'DMARC', 'MTA-STS']).describe('What the record is for.'),
    type: z.enum(['MX', 'TXT']).describe('The DNS record type.'),
    name: z.string().min(1).max(253).describe('The owner name of the record, e.g. _dmarc.example.org.'),
    value: z
      .string()
      .max(8192)
      .describe(
        'The record data as published: "10 mx.example.org." for MX, the text of a TXT record (unquoted, unsplit).',
      ),
    verified: z
      .boolean()
      .optional()
      .describe('Whether DNS showed this record at the last check (dnsCheckedAt); absent if not checked.'),
  })
  .describe('A DNS record the owner of the domain publishes.');

export const DkimKeyStatusSchema = z
  .strictObject({
    selector: z.string().min(1).max(253).describe('The DKIM selector.'),
    algorithm: z.enum(DKIM_ALGORITHMS).describe('rsa-sha256 or ed25519-sha256.'),
    state: z
      .enum(['Active', 'Pending', 'Retiring'])
      .describe(
        'Active: signs. Pending: published, signs once DNS shows it. Retiring: replaced; published until retireAt.',
      ),
    secretName: z.string().min(1).max(253).describe('The Secret holding the private key.'),
    createdAt: timestamp.describe('When the key was generated (or first seen, for a key the owner brought).'),
    activatedAt: timestamp.optional().describe('When the key started signing.'),
    retireAt: timestamp.optional().describe('When a retiring key is unpublished and its Secret deleted.'),
  })
  .describe('A DKIM key of the domain and its place in the rotation.');

export const CertificateStatusSchema = z
  .strictObject({
    source: z.enum(['CertManager', 'Operator', 'Secret']).describe('Where the certificate comes from.'),
    secretName: z.string().min(1).max(253).describe('The kubernetes.io/tls Secret holding it.'),
    notAfter: timestamp.optional().describe('When it expires.'),
    dnsNames: z.array(z.string().max(253)).max(16).describe('The host names it is valid for.'),
  })
  .describe('The TLS certificate in use.');

export const MailDomainStatusSchema = z
  .strictObject({
    observedGeneration: observedGeneration.optional(),
    conditions: conditions.optional(),
    dnsRecords: z
      .array(DnsRecordSchema)
      .max(32)
      .optional()
      .describe('The DNS records to publish, with whether DNS shows them.'),
    dkimKeys: z
      .array(DkimKeyStatusSchema)
      .max(32)
      .optional()
      .describe('The DKIM keys: active, pending and retiring.'),
    certificate: CertificateStatusSchema.optional(),
    configGeneration: configGeneration.optional(),
    dnsCheckedAt: timestamp.optional().describe('When DNS was last checked for the records.'),
    mtaStsPolicy: z
      .string()
      .max(4096)
      .optional()
      .describe(
        'The MTA-STS policy file to serve at https://mta-sts.<domain>/.well-known/mta-sts.txt (RFC 8461).',
      ),
  })
  .describe('The observed state of the MailDomain, written by the operator.');
export type MailDomainStatus = z.infer<typeof MailDomainStatusSchema>;

export const DeliveryPolicyStatusSchema = z
  .strictObject({
    observedGeneration: observedGeneration.optional(),
    conditions: conditions.optional(),
    configGeneration: configGeneration.optional(),
  })
  .describe('The observed state of the DeliveryPolicy, written by the operator.');
export type DeliveryPolicyStatus = z.infer<typeof DeliveryPolicyStatusSchema>;
