-- The Kubernetes version a cluster runs, recorded when an apply finished `kubeadm init`
-- (or found it done) at that version: status and the upgrade guard read it, never the spec.
-- The same shape as migrations/sqlite/0003_installed_version.sql.
CREATE TABLE cluster_versions (
    cluster    TEXT   PRIMARY KEY,
    kubernetes TEXT   NOT NULL,
    updated_at BIGINT NOT NULL
);
