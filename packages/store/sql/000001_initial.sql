-- Petrel state, first version. Forward-only: a later change is a new numbered file.
-- Written by the recorder (from the JetStream event stream), never on the accept path.

CREATE TABLE messages (
  message_id   text        PRIMARY KEY,
  sender       text        NOT NULL,
  received_at  timestamptz NOT NULL,
  size_bytes   bigint      NOT NULL
);

CREATE TABLE delivery_events (
  event_id           text        PRIMARY KEY,
  message_id         text        NOT NULL,
  kind               text        NOT NULL CHECK (kind IN ('accepted', 'delivered', 'deferred', 'bounced', 'expired')),
  destination_domain text        NOT NULL,
  recipients         text[]      NOT NULL,
  at                 timestamptz NOT NULL,
  attempt            integer     NOT NULL DEFAULT 0,
  remote_host        text        NOT NULL DEFAULT '',
  reply_code         integer,
  reply_enhanced     text        NOT NULL DEFAULT '',
  reply_text         text        NOT NULL DEFAULT ''
);

CREATE INDEX delivery_events_message_idx ON delivery_events (message_id, at);
