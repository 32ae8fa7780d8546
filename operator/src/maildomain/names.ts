import { createHash } from 'node:crypto';

/**
 * Names, labels and annotations of the objects the operator makes for a MailDomain. They are
 * how the operator finds its own objects again after a restart, so they never change.
 */
export const LABEL_MAILDOMAIN = 'petrel.dev/maildomain';
export const LABEL_PURPOSE = 'petrel.dev/purpose';
export const LABEL_MANAGED_BY = 'app.kubernetes.io/managed-by';
export const MANAGED_BY = 'petrel-operator';

export const PURPOSE_DKIM = 'dkim';
export const PURPOSE_TLS = 'tls';
export const PURPOSE_CA = 'ca';

/** On a DKIM key Secret: the key's record (generation, algorithm, selector, state, times). */
export const ANNOTATION_DKIM = 'petrel.dev/dkim-key';
/** On a MailDomain: `skip` ends the drain at once when it is deleted (queued mail is then not waited for). */
export const ANNOTATION_DRAIN = 'petrel.dev/drain';

/** Kept on MailDomains until their queued mail drained and the operator's objects are removed. */
export const FINALIZER = 'petrel.dev/cleanup';

/** Secret data keys of a DKIM key Secret. */
export const DKIM_PRIVATE_KEY = 'private.pem';
export const DKIM_DNS_RECORD = 'dns.txt';

export function dkimSecretName(mailDomain: string, selector: string): string {
  return `${mailDomain}-dkim-${selector}`.slice(0, 253);
}

export function tlsSecretName(mailDomain: string): string {
  return `${mailDomain}-tls`.slice(0, 253);
}

/** The operator's CA lives in the operator's own namespace. */
export const CA_SECRET_NAME = 'petrel-operator-ca';

/** A label value names at most 63 characters; longer MailDomain names are cut and hashed. */
export function labelValue(name: string): string {
  if (name.length <= 63) return name;
  return `${name.slice(0, 54)}-${createHash('sha256').update(name).digest('hex').slice(0, 8)}`;
}

export function ownedLabels(mailDomain: string, purpose: string): Record<string, string> {
  return {
    [LABEL_MAILDOMAIN]: labelValue(mailDomain),
    [LABEL_PURPOSE]: purpose,
    [LABEL_MANAGED_BY]: MANAGED_BY,
  };
}
