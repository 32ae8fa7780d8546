-- Event kinds added with the state issue (proto/petrel/v1/delivery_event.proto): suppressed (a
-- recipient put on the suppression list) and purged (queued mail removed by an operator, no DSN).
-- The DSN sent for a bounce, expiry or delay is named on its event and on the recipient.

ALTER TABLE events DROP CONSTRAINT events_kind_check;
ALTER TABLE events ADD CONSTRAINT events_kind_check
  CHECK (kind IN ('accepted', 'delivered', 'deferred', 'bounced', 'expired', 'suppressed', 'purged'));
ALTER TABLE events ADD COLUMN sender text NOT NULL DEFAULT '';
ALTER TABLE events ADD COLUMN dsn_message_id text NOT NULL DEFAULT '';

ALTER TABLE recipients DROP CONSTRAINT recipients_status_check;
ALTER TABLE recipients ADD CONSTRAINT recipients_status_check
  CHECK (status IN ('queued', 'deferred', 'delivered', 'bounced', 'expired', 'purged'));
ALTER TABLE recipients ADD COLUMN dsn_message_id text NOT NULL DEFAULT '';
-- Find recipients of a message without the partition key (the trace API's lookup by queue id
-- derives accepted_at from the ULID, but messages accepted by other writers may not be ULIDs).
CREATE INDEX recipients_message_idx ON recipients (message_id);
CREATE INDEX messages_id_idx ON messages (message_id);

ALTER TABLE suppressions ADD COLUMN status text NOT NULL DEFAULT '';

-- The webhook delivery log: one row per attempt of one event to one subscription.
ALTER TABLE webhook_deliveries ADD COLUMN domain text NOT NULL DEFAULT '';
ALTER TABLE webhook_deliveries ADD COLUMN event_kind text NOT NULL DEFAULT '';
ALTER TABLE webhook_deliveries ADD COLUMN message_id text NOT NULL DEFAULT '';
ALTER TABLE webhook_deliveries ADD COLUMN idempotency_key text NOT NULL DEFAULT '';
ALTER TABLE webhook_deliveries ADD COLUMN duration_ms bigint NOT NULL DEFAULT 0;
CREATE INDEX webhook_deliveries_subscription_idx ON webhook_deliveries (subscription, created_at);
CREATE INDEX webhook_deliveries_key_idx ON webhook_deliveries (idempotency_key);

-- The last attempt of an expired entry is reported by its EXPIRED event (the worker decides the
-- expiry after that attempt failed): an attempt too.
CREATE OR REPLACE VIEW attempts AS
  SELECT message_id, destination_domain, attempt, event_id, at, kind AS outcome, recipients,
         remote_host, remote_address, tls_protocol, reply_code, reply_enhanced, reply_text, duration_ms
    FROM events
   WHERE kind IN ('delivered', 'deferred', 'bounced', 'expired')
     AND attempt > 0
     AND error NOT LIKE 'not attempted:%';
