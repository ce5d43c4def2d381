-- What a cluster is made of, kept between operations: the certificates kubegrid's PKI issued
-- (CA keys included: access to this database is access to the clusters, so grant it to the
-- operator's role only), the hosts that joined, and the admin kubeconfig the operator later
-- stores in a Secret. The same shapes as migrations/sqlite/0002_cluster_state.sql.
CREATE TABLE cluster_certs (
    cluster    TEXT   NOT NULL,
    name       TEXT   NOT NULL,
    cert_pem   TEXT   NOT NULL,
    key_pem    TEXT   NOT NULL,
    issued_at  BIGINT NOT NULL,
    PRIMARY KEY (cluster, name)
);

CREATE TABLE cluster_members (
    cluster    TEXT   NOT NULL,
    node       TEXT   NOT NULL,
    -- JSON the engine writes: how to reach the host and its roles, so a Node removed from
    -- the spec can still be drained and reset.
    record     TEXT   NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (cluster, node)
);

CREATE TABLE cluster_kubeconfigs (
    cluster    TEXT   PRIMARY KEY,
    kubeconfig TEXT   NOT NULL,
    server     TEXT   NOT NULL,
    updated_at BIGINT NOT NULL
);
