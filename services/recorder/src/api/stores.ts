/**
 * The NATS KV state the API reads and edits beside Postgres: the suppression list and the
 * destinations' suspensions, mirrored in memory as the workers mirror them. One place opens
 * both (the recorder, the tests, the benchmark).
 */
import type { JetStreamClient } from '@nats-io/jetstream';
import type { KV } from '@nats-io/kv';
import {
  DestinationControls,
  openDestinationsKv,
  openSuppressionsKv,
  SuppressionList,
} from '@petrel/delivery';

export interface ApiStores {
  readonly suppressions: SuppressionList;
  /** The bucket under `suppressions` (the recorder mirrors it into Postgres). */
  readonly suppressionsKv: KV;
  readonly controls: DestinationControls;
  stop(): void;
}

/** Opens (or creates) both buckets and resolves once their mirrors are loaded. */
export async function openApiStores(js: JetStreamClient, replicas: number): Promise<ApiStores> {
  const suppressionsKv = await openSuppressionsKv(js, replicas);
  const suppressions = new SuppressionList(suppressionsKv);
  const controls = new DestinationControls(await openDestinationsKv(js, replicas));
  await Promise.all([suppressions.start(), controls.start()]);
  return {
    suppressions,
    suppressionsKv,
    controls,
    stop: () => {
      suppressions.stop();
      controls.stop();
    },
  };
}
