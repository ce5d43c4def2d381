-- kubegrid journal, schema version 1, for PostgreSQL.
--
-- The same tables, columns and constraints as migrations/sqlite/0001_journal.sql, in
-- PostgreSQL's types: SQLite's INTEGER is 64-bit, hence BIGINT; AUTOINCREMENT becomes an
-- identity column (ids are never reused either way); the 0/1 `ok` flag becomes BOOLEAN, which
-- the journal binds and reads as a Rust bool on both backends.
--
-- Enumerations are stored as lowercase text so that new operation kinds need no migration;
-- the CHECK constraints keep statuses to the values this schema version understands.
-- Times are unix milliseconds.

CREATE TABLE operations (
    id            BIGINT  GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind          TEXT    NOT NULL,
    cluster       TEXT    NOT NULL,
    spec_digest   TEXT    NOT NULL,
    -- JSON array of host names, in the order the operation was given them.
    hosts         TEXT    NOT NULL,
    status        TEXT    NOT NULL
                  CHECK (status IN ('running', 'succeeded', 'failed', 'interrupted')),
    started_at    BIGINT  NOT NULL,
    finished_at   BIGINT,
    summary       TEXT,
    -- The process that runs the operation: pid, its start time in clock ticks after boot
    -- (/proc/PID/stat field 22) and the kernel boot id. Several operator replicas share one
    -- server, so these only identify a process on the machine with that boot id.
    owner_pid     BIGINT  NOT NULL,
    owner_start   BIGINT  NOT NULL,
    owner_boot_id TEXT    NOT NULL
);

CREATE INDEX operations_running ON operations (status) WHERE status = 'running';

CREATE TABLE task_events (
    id           BIGINT  GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    operation_id BIGINT  NOT NULL REFERENCES operations (id) ON DELETE CASCADE,
    host         TEXT    NOT NULL,
    phase        TEXT    NOT NULL,
    task         TEXT    NOT NULL,
    status       TEXT    NOT NULL
                 CHECK (status IN ('changed', 'unchanged', 'failed', 'skipped')),
    duration_ms  BIGINT  NOT NULL,
    -- Both already redacted; output is at most the last 4 KiB.
    message      TEXT    NOT NULL,
    output       TEXT    NOT NULL,
    recorded_at  BIGINT  NOT NULL
);

CREATE INDEX task_events_by_host ON task_events (operation_id, host);
CREATE INDEX task_events_by_status ON task_events (operation_id, status);

CREATE TABLE host_results (
    id           BIGINT  GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    operation_id BIGINT  NOT NULL REFERENCES operations (id) ON DELETE CASCADE,
    host         TEXT    NOT NULL,
    phase        TEXT    NOT NULL,
    ok           BOOLEAN NOT NULL,
    -- Already redacted.
    error        TEXT,
    recorded_at  BIGINT  NOT NULL,
    UNIQUE (operation_id, host, phase)
);

CREATE TABLE host_keys (
    cluster       TEXT    NOT NULL,
    host          TEXT    NOT NULL,
    address       TEXT    NOT NULL,
    algorithm     TEXT    NOT NULL,
    fingerprint   TEXT    NOT NULL,
    first_seen_at BIGINT  NOT NULL,
    replaced_at   BIGINT,
    PRIMARY KEY (cluster, host)
);
