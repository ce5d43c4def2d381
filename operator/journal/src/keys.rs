//! Pinned SSH host keys: recorded on first contact, never replaced without being asked to.

use sqlx::{SqliteConnection, sqlite::SqliteRow};

use crate::{
    Journal,
    error::{Error, KeyConflict, Result},
    time::now_ms,
    types::PinnedKey,
};

const KEY_SELECT: &str = "
SELECT address, algorithm, fingerprint, first_seen_at, replaced_at
FROM host_keys WHERE cluster = ? AND host = ?";

impl Journal {
    /// The key pinned for `host` of `cluster`, if any.
    pub async fn pinned_key(&self, cluster: &str, host: &str) -> Result<Option<PinnedKey>> {
        let mut conn = self
            .pool
            .acquire()
            .await
            .map_err(self.query_err("read a pinned host key"))?;
        self.read_key(&mut conn, cluster, host).await
    }

    /// Pins `host`'s key on first contact. Pinning the same key again is a no-op; a different
    /// key is [`Error::KeyAlreadyPinned`] and leaves the existing pin as it was.
    pub async fn pin_key(
        &self,
        cluster: &str,
        host: &str,
        address: &str,
        algorithm: &str,
        fingerprint: &str,
    ) -> Result<()> {
        const OP: &str = "pin a host key";
        // IMMEDIATE takes the write lock up front, so two first contacts with the same host
        // cannot both see no pin and the second fail on the insert rather than the check.
        let mut tx = self
            .pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(self.query_err(OP))?;
        if let Some(pinned) = self.read_key(&mut tx, cluster, host).await? {
            if pinned.algorithm == algorithm && pinned.fingerprint == fingerprint {
                return Ok(());
            }
            return Err(Error::KeyAlreadyPinned(Box::new(KeyConflict {
                cluster: cluster.to_owned(),
                host: host.to_owned(),
                pinned_algorithm: pinned.algorithm,
                pinned_fingerprint: pinned.fingerprint,
                offered_algorithm: algorithm.to_owned(),
                offered_fingerprint: fingerprint.to_owned(),
            })));
        }
        sqlx::query(
            "INSERT INTO host_keys (cluster, host, address, algorithm, fingerprint, first_seen_at)
             VALUES (?, ?, ?, ?, ?, ?)",
        )
        .bind(cluster)
        .bind(host)
        .bind(address)
        .bind(algorithm)
        .bind(fingerprint)
        .bind(now_ms())
        .execute(&mut *tx)
        .await
        .map_err(self.query_err(OP))?;
        tx.commit().await.map_err(self.query_err(OP))
    }

    /// Deliberately replaces `host`'s pinned key (the accept command, after the user checked
    /// the new fingerprint) and returns the pin it replaced. The address and first-seen time
    /// stay; the replacement time is recorded.
    pub async fn replace_key(
        &self,
        cluster: &str,
        host: &str,
        algorithm: &str,
        fingerprint: &str,
    ) -> Result<PinnedKey> {
        const OP: &str = "replace a pinned host key";
        let mut tx = self
            .pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(self.query_err(OP))?;
        let Some(previous) = self.read_key(&mut tx, cluster, host).await? else {
            return Err(Error::KeyNotPinned {
                path: self.path.clone(),
                cluster: cluster.to_owned(),
                host: host.to_owned(),
            });
        };
        sqlx::query(
            "UPDATE host_keys SET algorithm = ?, fingerprint = ?, replaced_at = ?
             WHERE cluster = ? AND host = ?",
        )
        .bind(algorithm)
        .bind(fingerprint)
        .bind(now_ms())
        .bind(cluster)
        .bind(host)
        .execute(&mut *tx)
        .await
        .map_err(self.query_err(OP))?;
        tx.commit().await.map_err(self.query_err(OP))?;
        Ok(previous)
    }

    /// Removes `host`'s pin, so the next contact pins whatever key it then sees. Returns
    /// whether there was one.
    pub async fn forget_key(&self, cluster: &str, host: &str) -> Result<bool> {
        let done = sqlx::query("DELETE FROM host_keys WHERE cluster = ? AND host = ?")
            .bind(cluster)
            .bind(host)
            .execute(&self.pool)
            .await
            .map_err(self.query_err("forget a pinned host key"))?;
        Ok(done.rows_affected() > 0)
    }

    async fn read_key(
        &self,
        conn: &mut SqliteConnection,
        cluster: &str,
        host: &str,
    ) -> Result<Option<PinnedKey>> {
        const OP: &str = "read a pinned host key";
        let row: Option<SqliteRow> = sqlx::query(KEY_SELECT)
            .bind(cluster)
            .bind(host)
            .fetch_optional(conn)
            .await
            .map_err(self.query_err(OP))?;
        row.map(|row| {
            Ok(PinnedKey {
                algorithm: self.col(&row, "algorithm", OP)?,
                fingerprint: self.col(&row, "fingerprint", OP)?,
                address: self.col(&row, "address", OP)?,
                first_seen_ms: self.col(&row, "first_seen_at", OP)?,
                replaced_ms: self.col(&row, "replaced_at", OP)?,
            })
        })
        .transpose()
    }
}
