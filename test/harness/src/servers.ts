import { join } from 'node:path';
import { type JetStreamManager, jetstreamManager } from '@nats-io/jetstream';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import {
  findNatsServer,
  freePort,
  type NatsServerHandle,
  type PostgresHandle,
  startNatsServer,
  startPostgres as startPostgresProcess,
} from '@petrel/localenv';
import { ensureDatabase } from '@petrel/store';
import { tempDir } from './cleanup.ts';
import { waitFor } from './wait.ts';

/** A hook to register cleanup, e.g. node:test's `t.after`. */
export type After = (fn: () => Promise<void> | void) => void;

/** One real nats-server with JetStream, on a free loopback port, in its own temporary directory. */
export async function startNats(after: After): Promise<NatsServerHandle> {
  const binary = await findNatsServer();
  const dir = await tempDir('nats');
  const server = await startNatsServer({ binary, dir, name: 'test' });
  after(() => server.stop());
  return server;
}

export interface NatsCluster {
  readonly nodes: readonly NatsServerHandle[];
  /** Client URLs of all nodes (a client fails over between them). */
  readonly servers: string[];
  /** Connects a client to the cluster; closed at cleanup. */
  connect(): Promise<NatsConnection>;
}

/** A JetStream cluster of `size` real nats-server processes, waited on until JetStream has a meta leader. */
export async function startNatsCluster(after: After, size = 3): Promise<NatsCluster> {
  const binary = await findNatsServer();
  const root = await tempDir('nats-cluster');
  const routePorts = await Promise.all(Array.from({ length: size }, () => freePort()));
  const routes = routePorts.map((p) => `nats-route://127.0.0.1:${p}`);
  const nodes = await Promise.all(
    routePorts.map((port, i) =>
      startNatsServer({
        binary,
        dir: join(root, `n${i + 1}`),
        name: `n${i + 1}`,
        cluster: { name: 'petrel-test', port, routes },
      }),
    ),
  );
  after(async () => {
    await Promise.all(nodes.map((n) => n.stop()));
  });
  const servers = nodes.map((n) => n.url);
  const clients: NatsConnection[] = [];
  after(async () => {
    await Promise.all(clients.map((c) => c.close()));
  });
  const cluster: NatsCluster = {
    nodes,
    servers,
    async connect() {
      const nc = await connect({ servers, maxReconnectAttempts: -1, reconnectTimeWait: 100 });
      clients.push(nc);
      return nc;
    },
  };
  const nc = await cluster.connect();
  const jsm: JetStreamManager = await jetstreamManager(nc, { checkAPI: false });
  // The cluster is usable once the JetStream meta group elected a leader.
  await waitFor(async () => (await jsm.getAccountInfo()) !== undefined, {
    timeoutMs: 30_000,
    intervalMs: 200,
    message: 'JetStream cluster meta leader',
  });
  return cluster;
}

export interface TestPostgres extends PostgresHandle {
  /** URL of a fresh database `petrel` on it. */
  readonly databaseUrl: string;
}

/** A real PostgreSQL server on a free loopback port in a temporary directory, with a `petrel` database. */
export async function startPostgres(after: After): Promise<TestPostgres> {
  const dir = await tempDir('postgres');
  const server = await startPostgresProcess({ dir, durable: false });
  after(() => server.stop());
  await ensureDatabase(server.url, 'petrel');
  return Object.assign(server, { databaseUrl: server.urlFor('petrel') });
}
