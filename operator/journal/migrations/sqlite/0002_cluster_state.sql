-- What a cluster is made of, kept between operations: the certificates kubegrid's PKI issued
-- (CA keys included: the journal file is 0600 and its directory 0700), the hosts that joined,
-- and the admin kubeconfig the operator later stores in a Secret.
CREATE TABLE cluster_certs (
    cluster    TEXT NOT NULL,
    name       TEXT NOT NULL,
    cert_pem   TEXT NOT NULL,
    key_pem    TEXT NOT NULL,
    issued_at  INTEGER NOT NULL,
    PRIMARY KEY (cluster, name)
);

CREATE TABLE cluster_members (
    cluster    TEXT NOT NULL,
    node       TEXT NOT NULL,
    -- JSON the engine writes: how to reach the host and its roles, so a Node removed from
    -- the spec can still be drained and reset.
    record     TEXT NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (cluster, node)
);

CREATE TABLE cluster_kubeconfigs (
    cluster    TEXT PRIMARY KEY,
    kubeconfig TEXT NOT NULL,
    server     TEXT NOT NULL,
    updated_at INTEGER NOT NULL
);
