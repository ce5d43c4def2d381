-- Small per-cluster values an operation must find again after a crash or in the next run,
-- by key: the progress of a certificate authority rotation is kept under `rotation`.
CREATE TABLE cluster_state (
    cluster    TEXT NOT NULL,
    key        TEXT NOT NULL,
    value      TEXT NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (cluster, key)
);
