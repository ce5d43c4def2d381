//! Cluster state kept between operations: issued certificates, member hosts and the admin
//! kubeconfig. (Small values by key live in `kv.rs`.)

use crate::{Journal, backend::dispatch, error::Result, time::now_ms};

/// A certificate and its key, as PEM.
#[derive(Clone, PartialEq, Eq)]
pub struct StoredCert {
    /// Certificate PEM.
    pub cert_pem: String,
    /// Private key PEM.
    pub key_pem: String,
}

impl std::fmt::Debug for StoredCert {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Keys must never reach logs.
        f.debug_struct("StoredCert")
            .field("cert_pem", &self.cert_pem)
            .field("key_pem", &"[redacted]")
            .finish()
    }
}

impl Journal {
    /// The certificate stored under `name` for `cluster`.
    pub async fn cert(&self, cluster: &str, name: &str) -> Result<Option<StoredCert>> {
        const OP: &str = "read a certificate";
        dispatch!(&self.pool, |pool| {
            sqlx::query(
                "SELECT cert_pem, key_pem FROM cluster_certs WHERE cluster = $1 AND name = $2",
            )
            .bind(cluster)
            .bind(name)
            .fetch_optional(pool)
            .await
            .map_err(self.query_err(OP))?
            .map(|row| {
                let cols = self.columns(&row, OP);
                Ok(StoredCert {
                    cert_pem: cols.text("cert_pem")?,
                    key_pem: cols.text("key_pem")?,
                })
            })
            .transpose()
        })
    }

    /// Every certificate stored for `cluster`, by name, sorted by name.
    pub async fn certs(&self, cluster: &str) -> Result<Vec<(String, StoredCert)>> {
        const OP: &str = "read the certificates";
        dispatch!(&self.pool, |pool| {
            sqlx::query(
                "SELECT name, cert_pem, key_pem FROM cluster_certs WHERE cluster = $1 ORDER BY name",
            )
            .bind(cluster)
            .fetch_all(pool)
            .await
            .map_err(self.query_err(OP))?
            .iter()
            .map(|row| {
                let cols = self.columns(row, OP);
                Ok((
                    cols.text("name")?,
                    StoredCert {
                        cert_pem: cols.text("cert_pem")?,
                        key_pem: cols.text("key_pem")?,
                    },
                ))
            })
            .collect()
        })
    }

    /// Removes the certificate `name` of `cluster` (a rotation's `<ca>-next` once it became
    /// the CA); whether there was one.
    pub async fn delete_cert(&self, cluster: &str, name: &str) -> Result<bool> {
        dispatch!(&self.pool, |pool| {
            sqlx::query("DELETE FROM cluster_certs WHERE cluster = $1 AND name = $2")
                .bind(cluster)
                .bind(name)
                .execute(pool)
                .await
                .map(|done| done.rows_affected() > 0)
        })
        .map_err(self.query_err("delete a certificate"))
    }

    /// Stores (or replaces) the certificate `name` of `cluster`.
    pub async fn put_cert(&self, cluster: &str, name: &str, cert: &StoredCert) -> Result<()> {
        dispatch!(&self.pool, |pool| {
            sqlx::query(
                "INSERT INTO cluster_certs (cluster, name, cert_pem, key_pem, issued_at)
                 VALUES ($1, $2, $3, $4, $5)
                 ON CONFLICT (cluster, name) DO UPDATE SET
                   cert_pem = excluded.cert_pem, key_pem = excluded.key_pem,
                   issued_at = excluded.issued_at",
            )
            .bind(cluster)
            .bind(name)
            .bind(&cert.cert_pem)
            .bind(&cert.key_pem)
            .bind(now_ms())
            .execute(pool)
            .await
            .map(drop)
        })
        .map_err(self.query_err("store a certificate"))
    }

    /// The member hosts of `cluster` with the engine's record of each, by Node name.
    pub async fn members(&self, cluster: &str) -> Result<Vec<(String, String)>> {
        const OP: &str = "read cluster members";
        dispatch!(&self.pool, |pool| {
            sqlx::query("SELECT node, record FROM cluster_members WHERE cluster = $1 ORDER BY node")
                .bind(cluster)
                .fetch_all(pool)
                .await
                .map_err(self.query_err(OP))?
                .iter()
                .map(|row| {
                    let cols = self.columns(row, OP);
                    Ok((cols.text("node")?, cols.text("record")?))
                })
                .collect()
        })
    }

    /// Records `node` as a member of `cluster`.
    pub async fn put_member(&self, cluster: &str, node: &str, record: &str) -> Result<()> {
        dispatch!(&self.pool, |pool| {
            sqlx::query(
                "INSERT INTO cluster_members (cluster, node, record, updated_at)
                 VALUES ($1, $2, $3, $4)
                 ON CONFLICT (cluster, node) DO UPDATE SET
                   record = excluded.record, updated_at = excluded.updated_at",
            )
            .bind(cluster)
            .bind(node)
            .bind(record)
            .bind(now_ms())
            .execute(pool)
            .await
            .map(drop)
        })
        .map_err(self.query_err("record a cluster member"))
    }

    /// Forgets `node` as a member of `cluster` (after it was removed and reset).
    pub async fn remove_member(&self, cluster: &str, node: &str) -> Result<()> {
        dispatch!(&self.pool, |pool| {
            sqlx::query("DELETE FROM cluster_members WHERE cluster = $1 AND node = $2")
                .bind(cluster)
                .bind(node)
                .execute(pool)
                .await
                .map(drop)
        })
        .map_err(self.query_err("forget a cluster member"))
    }

    /// Records the admin kubeconfig of `cluster`.
    pub async fn put_kubeconfig(&self, cluster: &str, server: &str, text: &str) -> Result<()> {
        dispatch!(&self.pool, |pool| {
            sqlx::query(
                "INSERT INTO cluster_kubeconfigs (cluster, kubeconfig, server, updated_at)
                 VALUES ($1, $2, $3, $4)
                 ON CONFLICT (cluster) DO UPDATE SET
                   kubeconfig = excluded.kubeconfig, server = excluded.server,
                   updated_at = excluded.updated_at",
            )
            .bind(cluster)
            .bind(text)
            .bind(server)
            .bind(now_ms())
            .execute(pool)
            .await
            .map(drop)
        })
        .map_err(self.query_err("record the admin kubeconfig"))
    }

    /// The admin kubeconfig recorded for `cluster`.
    pub async fn kubeconfig(&self, cluster: &str) -> Result<Option<String>> {
        const OP: &str = "read the admin kubeconfig";
        dispatch!(&self.pool, |pool| {
            sqlx::query("SELECT kubeconfig FROM cluster_kubeconfigs WHERE cluster = $1")
                .bind(cluster)
                .fetch_optional(pool)
                .await
                .map_err(self.query_err(OP))?
                .map(|row| self.columns(&row, OP).text("kubeconfig"))
                .transpose()
        })
    }
}
