-- kubegrid journal, schema version 1.
--
-- Enumerations are stored as lowercase text so that new operation kinds need no migration;
-- the CHECK constraints keep statuses to the values this schema version understands.
-- Times are unix milliseconds.

CREATE TABLE operations (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    kind          TEXT    NOT NULL,
    cluster       TEXT    NOT NULL,
    spec_digest   TEXT    NOT NULL,
    -- JSON array of host names, in the order the operation was given them.
    hosts         TEXT    NOT NULL,
    status        TEXT    NOT NULL
                  CHECK (status IN ('running', 'succeeded', 'failed', 'interrupted')),
    started_at    INTEGER NOT NULL,
    finished_at   INTEGER,
    summary       TEXT,
    -- The process that runs the operation: pid, its start time in clock ticks after boot
    -- (/proc/PID/stat field 22) and the kernel boot id, so that a recycled pid, or the same
    -- pid and start tick after a reboot, is not mistaken for a live owner.
    owner_pid     INTEGER NOT NULL,
    owner_start   INTEGER NOT NULL,
    owner_boot_id TEXT    NOT NULL
);

CREATE INDEX operations_running ON operations (status) WHERE status = 'running';

CREATE TABLE task_events (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    operation_id INTEGER NOT NULL REFERENCES operations (id) ON DELETE CASCADE,
    host         TEXT    NOT NULL,
    phase        TEXT    NOT NULL,
    task         TEXT    NOT NULL,
    status       TEXT    NOT NULL
                 CHECK (status IN ('changed', 'unchanged', 'failed', 'skipped')),
    duration_ms  INTEGER NOT NULL,
    -- Both already redacted; output is at most the last 4 KiB.
    message      TEXT    NOT NULL,
    output       TEXT    NOT NULL,
    recorded_at  INTEGER NOT NULL
);

CREATE INDEX task_events_by_host ON task_events (operation_id, host);
CREATE INDEX task_events_by_status ON task_events (operation_id, status);

CREATE TABLE host_results (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    operation_id INTEGER NOT NULL REFERENCES operations (id) ON DELETE CASCADE,
    host         TEXT    NOT NULL,
    phase        TEXT    NOT NULL,
    ok           INTEGER NOT NULL CHECK (ok IN (0, 1)),
    -- Already redacted.
    error        TEXT,
    recorded_at  INTEGER NOT NULL,
    UNIQUE (operation_id, host, phase)
);

CREATE TABLE host_keys (
    cluster       TEXT    NOT NULL,
    host          TEXT    NOT NULL,
    address       TEXT    NOT NULL,
    algorithm     TEXT    NOT NULL,
    fingerprint   TEXT    NOT NULL,
    first_seen_at INTEGER NOT NULL,
    replaced_at   INTEGER,
    PRIMARY KEY (cluster, host)
);
