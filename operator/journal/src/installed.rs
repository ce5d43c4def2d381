//! The Kubernetes version each cluster runs, as the engine recorded it after installing it.

use crate::{Journal, backend::dispatch, error::Result, time::now_ms};

impl Journal {
    /// Records that `cluster` runs Kubernetes `version` (the engine calls this once the
    /// cluster's first control-plane host finished its playbook at that version).
    pub async fn put_installed_version(&self, cluster: &str, version: &str) -> Result<()> {
        dispatch!(&self.pool, |pool| {
            sqlx::query(
                "INSERT INTO cluster_versions (cluster, kubernetes, updated_at)
                 VALUES ($1, $2, $3)
                 ON CONFLICT (cluster) DO UPDATE SET
                   kubernetes = excluded.kubernetes, updated_at = excluded.updated_at",
            )
            .bind(cluster)
            .bind(version)
            .bind(now_ms())
            .execute(pool)
            .await
            .map(drop)
        })
        .map_err(self.query_err("record the installed Kubernetes version"))
    }

    /// The Kubernetes version recorded as installed for `cluster`; None before any install
    /// finished (or for a cluster installed by a kubegrid that did not record it).
    pub async fn installed_version(&self, cluster: &str) -> Result<Option<String>> {
        const OP: &str = "read the installed Kubernetes version";
        dispatch!(&self.pool, |pool| {
            sqlx::query("SELECT kubernetes FROM cluster_versions WHERE cluster = $1")
                .bind(cluster)
                .fetch_optional(pool)
                .await
                .map_err(self.query_err(OP))?
                .map(|row| self.columns(&row, OP).text("kubernetes"))
                .transpose()
        })
    }
}
