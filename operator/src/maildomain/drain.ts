import pg from 'pg';

/**
 * Whether mail for or from a domain is still queued, asked of the state the recorder keeps in
 * Postgres (docs/state.md): recipients in status queued or deferred whose destination is the
 * domain or whose message's sender is in it. The operator deletes a MailDomain's keys and
 * routes only after this says none are left (and the recorder has had time to catch up).
 */
export interface DrainChecker {
  /** The number of recipients still queued or deferred for or from `domain`. */
  queued(domain: string): Promise<number>;
  close(): Promise<void>;
}

export function postgresDrainChecker(databaseUrl: string): DrainChecker {
  const pool = new pg.Pool({ connectionString: databaseUrl, max: 2, connectionTimeoutMillis: 5000 });
  // An idle client's error (Postgres restarting) must not end the operator; the next query retries.
  pool.on('error', () => {});
  return {
    async queued(domain) {
      const result = await pool.query<{ n: string }>(
        `SELECT count(*) AS n FROM recipients r
          WHERE r.status IN ('queued', 'deferred')
            AND (r.destination_domain = $1
                 OR EXISTS (SELECT 1 FROM messages m
                             WHERE m.message_id = r.message_id AND m.accepted_at = r.accepted_at
                               AND m.sender_domain = $1))`,
        [domain.toLowerCase()],
      );
      return Number(result.rows[0]?.n ?? 0);
    },
    close: () => pool.end(),
  };
}
