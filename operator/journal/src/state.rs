//! Cluster state kept between operations: issued certificates, member hosts and the admin
//! kubeconfig.

use sqlx::Row;

use crate::{Journal, error::Result, time::now_ms};

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
        let row = sqlx::query(
            "SELECT cert_pem, key_pem FROM cluster_certs WHERE cluster = ? AND name = ?",
        )
        .bind(cluster)
        .bind(name)
        .fetch_optional(&self.pool)
        .await
        .map_err(self.query_err("read a certificate"))?;
        Ok(row.map(|r| StoredCert {
            cert_pem: r.get(0),
            key_pem: r.get(1),
        }))
    }

    /// Stores (or replaces) the certificate `name` of `cluster`.
    pub async fn put_cert(&self, cluster: &str, name: &str, cert: &StoredCert) -> Result<()> {
        sqlx::query(
            "INSERT INTO cluster_certs (cluster, name, cert_pem, key_pem, issued_at)
             VALUES (?, ?, ?, ?, ?)
             ON CONFLICT (cluster, name) DO UPDATE SET
               cert_pem = excluded.cert_pem, key_pem = excluded.key_pem,
               issued_at = excluded.issued_at",
        )
        .bind(cluster)
        .bind(name)
        .bind(&cert.cert_pem)
        .bind(&cert.key_pem)
        .bind(now_ms())
        .execute(&self.pool)
        .await
        .map_err(self.query_err("store a certificate"))?;
        Ok(())
    }

    /// The member hosts of `cluster` with the engine's record of each, by Node name.
    pub async fn members(&self, cluster: &str) -> Result<Vec<(String, String)>> {
        let rows =
            sqlx::query("SELECT node, record FROM cluster_members WHERE cluster = ? ORDER BY node")
                .bind(cluster)
                .fetch_all(&self.pool)
                .await
                .map_err(self.query_err("read cluster members"))?;
        Ok(rows.into_iter().map(|r| (r.get(0), r.get(1))).collect())
    }

    /// Records `node` as a member of `cluster`.
    pub async fn put_member(&self, cluster: &str, node: &str, record: &str) -> Result<()> {
        sqlx::query(
            "INSERT INTO cluster_members (cluster, node, record, updated_at) VALUES (?, ?, ?, ?)
             ON CONFLICT (cluster, node) DO UPDATE SET
               record = excluded.record, updated_at = excluded.updated_at",
        )
        .bind(cluster)
        .bind(node)
        .bind(record)
        .bind(now_ms())
        .execute(&self.pool)
        .await
        .map_err(self.query_err("record a cluster member"))?;
        Ok(())
    }

    /// Forgets `node` as a member of `cluster` (after it was removed and reset).
    pub async fn remove_member(&self, cluster: &str, node: &str) -> Result<()> {
        sqlx::query("DELETE FROM cluster_members WHERE cluster = ? AND node = ?")
            .bind(cluster)
            .bind(node)
            .execute(&self.pool)
            .await
            .map_err(self.query_err("forget a cluster member"))?;
        Ok(())
    }

    /// Records the admin kubeconfig of `cluster`.
    pub async fn put_kubeconfig(&self, cluster: &str, server: &str, text: &str) -> Result<()> {
        sqlx::query(
            "INSERT INTO cluster_kubeconfigs (cluster, kubeconfig, server, updated_at)
             VALUES (?, ?, ?, ?)
             ON CONFLICT (cluster) DO UPDATE SET
               kubeconfig = excluded.kubeconfig, server = excluded.server,
               updated_at = excluded.updated_at",
        )
        .bind(cluster)
        .bind(text)
        .bind(server)
        .bind(now_ms())
        .execute(&self.pool)
        .await
        .map_err(self.query_err("record the admin kubeconfig"))?;
        Ok(())
    }

    /// The admin kubeconfig recorded for `cluster`.
    pub async fn kubeconfig(&self, cluster: &str) -> Result<Option<String>> {
        let row = sqlx::query("SELECT kubeconfig FROM cluster_kubeconfigs WHERE cluster = ?")
            .bind(cluster)
            .fetch_optional(&self.pool)
            .await
            .map_err(self.query_err("read the admin kubeconfig"))?;
        Ok(row.map(|r| r.get(0)))
    }
}

#[cfg(test)]
mod tests {
    use crate::Journal;

    use super::StoredCert;

    #[tokio::test]
    async fn certificates_members_and_kubeconfig_round_trip_per_cluster() {
        let dir = tempfile::tempdir().unwrap();
        let j = Journal::open(&dir.path().join("j.db")).await.unwrap();
        let ca = StoredCert {
            cert_pem: "CERT".into(),
            key_pem: "KEY".into(),
        };
        assert_eq!(j.cert("a", "ca").await.unwrap(), None);
        j.put_cert("a", "ca", &ca).await.unwrap();
        assert_eq!(j.cert("a", "ca").await.unwrap(), Some(ca.clone()));
        assert_eq!(j.cert("b", "ca").await.unwrap(), None, "per cluster");
        let newer = StoredCert {
            cert_pem: "CERT2".into(),
            key_pem: "KEY2".into(),
        };
        j.put_cert("a", "ca", &newer).await.unwrap();
        assert_eq!(j.cert("a", "ca").await.unwrap(), Some(newer));
        assert!(!format!("{ca:?}").contains("KEY"), "Debug hides the key");

        j.put_member("a", "n2", "{\"x\":2}").await.unwrap();
        j.put_member("a", "n1", "{\"x\":1}").await.unwrap();
        j.put_member("a", "n1", "{\"x\":3}").await.unwrap();
        assert_eq!(
            j.members("a").await.unwrap(),
            vec![
                ("n1".to_string(), "{\"x\":3}".to_string()),
                ("n2".to_string(), "{\"x\":2}".to_string())
            ]
        );
        j.remove_member("a", "n2").await.unwrap();
        assert_eq!(j.members("a").await.unwrap().len(), 1);

        assert_eq!(j.kubeconfig("a").await.unwrap(), None);
        j.put_kubeconfig("a", "https://10.0.0.1:6443", "apiVersion: v1")
            .await
            .unwrap();
        assert_eq!(
            j.kubeconfig("a").await.unwrap().as_deref(),
            Some("apiVersion: v1")
        );
    }
}
