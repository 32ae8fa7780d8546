-- The state of every message, partitioned by day so that retention drops whole partitions
-- (docs/state.md). Replaces the first sketch of 000001, which nothing wrote to.
-- Written only by the recorder, from the JetStream event stream; never on the mail path.
--
-- Partition keys:
--  * messages and recipients: accepted_at, the time in the queue id (a ULID: its first 48 bits
--    are the acceptance time in milliseconds), so every writer finds a row's partition from the
--    id alone, and a redelivered event lands on the same row;
--  * events (and the attempts view over them): the event's own time.
-- Partitions are made and dropped by petrel_partitions_ensure / petrel_partitions_drop_before
-- below (called by the recorder), a day each, named <table>_pYYYYMMDD.

DROP TABLE IF EXISTS delivery_events;
DROP TABLE IF EXISTS messages;

CREATE TABLE messages (
  message_id         text        NOT NULL,
  accepted_at        timestamptz NOT NULL,
  -- The Message-ID header field (RFC 5322 §3.6.4), without angle brackets; '' when absent.
  header_message_id  text        NOT NULL DEFAULT '',
  sender             text        NOT NULL DEFAULT '',
  sender_domain      text        NOT NULL DEFAULT '',
  size_bytes         bigint      NOT NULL DEFAULT 0,
  client_address     text        NOT NULL DEFAULT '',
  trace_id           text        NOT NULL DEFAULT '',
  PRIMARY KEY (message_id, accepted_at)
) PARTITION BY RANGE (accepted_at);
CREATE INDEX messages_header_idx ON messages (header_message_id, accepted_at);
CREATE INDEX messages_sender_idx ON messages (sender, accepted_at);

-- One row per recipient: where it stands now.
CREATE TABLE recipients (
  message_id         text        NOT NULL,
  accepted_at        timestamptz NOT NULL,
  address            text        NOT NULL,
  destination_domain text        NOT NULL,
  status             text        NOT NULL CHECK (status IN ('queued', 'deferred', 'delivered', 'bounced', 'expired')),
  attempts           integer     NOT NULL DEFAULT 0,
  -- Time of the event that set the status: a late (redelivered, reordered) older event never
  -- overwrites a newer one.
  updated_at         timestamptz NOT NULL,
  last_reply         text        NOT NULL DEFAULT '',
  PRIMARY KEY (message_id, address, accepted_at)
) PARTITION BY RANGE (accepted_at);
CREATE INDEX recipients_address_idx ON recipients (lower(address), accepted_at);
CREATE INDEX recipients_queue_idx ON recipients (destination_domain, status) WHERE status IN ('queued', 'deferred');

-- Every event as published (proto/petrel/v1/delivery_event.proto), once: event_id is unique.
CREATE TABLE events (
  event_id           text        NOT NULL,
  at                 timestamptz NOT NULL,
  message_id         text        NOT NULL,
  kind               text        NOT NULL CHECK (kind IN ('accepted', 'delivered', 'deferred', 'bounced', 'expired')),
  destination_domain text        NOT NULL DEFAULT '',
  recipients         text[]      NOT NULL DEFAULT '{}',
  attempt            integer     NOT NULL DEFAULT 0,
  remote_host        text        NOT NULL DEFAULT '',
  remote_address     text        NOT NULL DEFAULT '',
  tls_protocol       text        NOT NULL DEFAULT '',
  reply_code         integer,
  reply_enhanced     text        NOT NULL DEFAULT '',
  reply_text         text        NOT NULL DEFAULT '',
  duration_ms        bigint      NOT NULL DEFAULT 0,
  error              text        NOT NULL DEFAULT '',
  trace_id           text        NOT NULL DEFAULT '',
  PRIMARY KEY (event_id, at)
) PARTITION BY RANGE (at);
CREATE INDEX events_message_idx ON events (message_id, at);

-- Delivery attempts to a destination: the delivered, deferred and bounced events, less those
-- deferred without an attempt (suspended or backed-off destinations, "not attempted: ..."; see
-- docs/delivery.md). A view, not a copy: it follows the events' partitions and retention.
CREATE VIEW attempts AS
  SELECT message_id, destination_domain, attempt, event_id, at, kind AS outcome, recipients,
         remote_host, remote_address, tls_protocol, reply_code, reply_enhanced, reply_text, duration_ms
    FROM events
   WHERE kind IN ('delivered', 'deferred', 'bounced')
     AND error NOT LIKE 'not attempted:%';

-- Not partitioned: a suppression lives until its expiry, not by age.
CREATE TABLE suppressions (
  address     text        PRIMARY KEY,
  reason      text        NOT NULL DEFAULT '',
  source      text        NOT NULL DEFAULT 'bounce' CHECK (source IN ('bounce', 'manual')),
  created_at  timestamptz NOT NULL DEFAULT now(),
  expires_at  timestamptz
);

CREATE TABLE webhook_deliveries (
  delivery_id     text        NOT NULL,
  created_at      timestamptz NOT NULL,
  subscription    text        NOT NULL,
  event_id        text        NOT NULL,
  url             text        NOT NULL,
  attempt         integer     NOT NULL DEFAULT 0,
  status_code     integer,
  error           text        NOT NULL DEFAULT '',
  delivered_at    timestamptz,
  PRIMARY KEY (delivery_id, created_at)
) PARTITION BY RANGE (created_at);

-- The partitioned tables and their partition keys' granularity (a day).
CREATE TABLE petrel_partitioned (
  table_name text PRIMARY KEY
);
INSERT INTO petrel_partitioned (table_name)
VALUES ('messages'), ('recipients'), ('events'), ('webhook_deliveries');

-- Day partitions of every partitioned table from `from_day` to `to_day` inclusive (UTC days),
-- created if missing. Returns how many were created.
CREATE FUNCTION petrel_partitions_ensure(from_day date, to_day date) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
  t text;
  d date;
  created integer := 0;
BEGIN
  FOR t IN SELECT table_name FROM petrel_partitioned ORDER BY table_name LOOP
    d := from_day;
    WHILE d <= to_day LOOP
      IF to_regclass(format('%I', t || '_p' || to_char(d, 'YYYYMMDD'))) IS NULL THEN
        EXECUTE format(
          'CREATE TABLE IF NOT EXISTS %I PARTITION OF %I FOR VALUES FROM (%L) TO (%L)',
          t || '_p' || to_char(d, 'YYYYMMDD'), t,
          (d::timestamp AT TIME ZONE 'UTC'), ((d + 1)::timestamp AT TIME ZONE 'UTC'));
        created := created + 1;
      END IF;
      d := d + 1;
    END LOOP;
  END LOOP;
  RETURN created;
END;
$$;

-- Drops the day partitions that end on or before `before_day` (UTC): retention without DELETE.
-- Returns the names of the dropped partitions.
CREATE FUNCTION petrel_partitions_drop_before(before_day date) RETURNS SETOF text
LANGUAGE plpgsql AS $$
DECLARE
  part record;
BEGIN
  FOR part IN
    SELECT c.relname AS name
      FROM pg_inherits i
      JOIN pg_class c ON c.oid = i.inhrelid
      JOIN pg_class p ON p.oid = i.inhparent
     WHERE p.relname IN (SELECT table_name FROM petrel_partitioned)
       AND c.relname ~ '_p[0-9]{8}$'
       AND to_date(right(c.relname, 8), 'YYYYMMDD') < before_day
     ORDER BY c.relname
  LOOP
    EXECUTE format('DROP TABLE %I', part.name);
    RETURN NEXT part.name;
  END LOOP;
END;
$$;
