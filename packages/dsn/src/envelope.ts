/** The DSN's view of a queued proto Envelope (proto/petrel/v1/envelope.proto). */
import { DsnReturn, type Envelope, timestampDate } from '@petrel/proto';
import type { DsnOriginal } from './build.ts';

/** Sender, ENVID, RET, arrival date and client of a queued message, as buildDsn takes them. */
export function originalFromEnvelope(envelope: Envelope): DsnOriginal {
  return {
    sender: envelope.sender,
    envid: envelope.dsnEnvid || undefined,
    ret:
      envelope.dsnReturn === DsnReturn.FULL
        ? 'FULL'
        : envelope.dsnReturn === DsnReturn.HEADERS
          ? 'HDRS'
          : undefined,
    receivedAt: envelope.receivedAt ? timestampDate(envelope.receivedAt) : undefined,
    client: envelope.client
      ? { helo: envelope.client.helo || undefined, remoteAddress: envelope.client.remoteAddress || undefined }
      : undefined,
    smtputf8: envelope.smtputf8,
  };
}
