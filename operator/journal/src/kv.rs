//! Small per-cluster values by key (`cluster_state`), for state an operation resumes from,
//! such as the phase a CA rotation reached.

use crate::{Journal, backend::dispatch, error::Result, time::now_ms};

impl Journal {
    /// Stores (or replaces) `value` under `key` for `cluster`.
    pub async fn put_state(&self, cluster: &str, key: &str, value: &str) -> Result<()> {
        dispatch!(&self.pool, |pool| {
            sqlx::query(
                "INSERT INTO cluster_state (cluster, key, value, updated_at)
                 VALUES ($1, $2, $3, $4)
                 ON CONFLICT (cluster, key) DO UPDATE SET
                   value = excluded.value, updated_at = excluded.updated_at",
            )
            .bind(cluster)
            .bind(key)
            .bind(value)
            .bind(now_ms())
            .execute(pool)
            .await
            .map(drop)
        })
        .map_err(self.query_err("store cluster state"))
    }

    /// The value stored under `key` for `cluster`.
    pub async fn state(&self, cluster: &str, key: &str) -> Result<Option<String>> {
        const OP: &str = "read cluster state";
        dispatch!(&self.pool, |pool| {
            sqlx::query("SELECT value FROM cluster_state WHERE cluster = $1 AND key = $2")
                .bind(cluster)
                .bind(key)
                .fetch_optional(pool)
                .await
                .map_err(self.query_err(OP))?
                .map(|row| self.columns(&row, OP).text("value"))
                .transpose()
        })
    }

    /// Removes the value under `key` for `cluster`; whether there was one.
    pub async fn delete_state(&self, cluster: &str, key: &str) -> Result<bool> {
        dispatch!(&self.pool, |pool| {
            sqlx::query("DELETE FROM cluster_state WHERE cluster = $1 AND key = $2")
                .bind(cluster)
                .bind(key)
                .execute(pool)
                .await
                .map(|done| done.rows_affected() > 0)
        })
        .map_err(self.query_err("delete cluster state"))
    }
}
