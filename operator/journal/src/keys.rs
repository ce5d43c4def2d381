//! Pinned SSH host keys: recorded on first contact, never replaced without being asked to.

use crate::{
    Journal,
    backend::{Backend, JournalRow, dispatch},
    error::{Error, KeyConflict, Result},
    time::now_ms,
    types::PinnedKey,
};

const KEY_SELECT: &str = "
SELECT address, algorithm, fingerprint, first_seen_at, replaced_at
FROM host_keys WHERE cluster = $1 AND host = $2";

/// [`KEY_SELECT`] holding the row until the transaction ends (Postgres; SQLite's
/// `BEGIN IMMEDIATE` already excludes other writers).
const KEY_SELECT_FOR_UPDATE: &str = "
SELECT address, algorithm, fingerprint, first_seen_at, replaced_at
FROM host_keys WHERE cluster = $1 AND host = $2 FOR UPDATE";

const KEY_INSERT: &str = "
INSERT INTO host_keys (cluster, host, address, algorithm, fingerprint, first_seen_at)
VALUES ($1, $2, $3, $4, $5, $6)
ON CONFLICT (cluster, host) DO NOTHING";

impl Journal {
    /// The key pinned for `host` of `cluster`, if any.
    pub async fn pinned_key(&self, cluster: &str, host: &str) -> Result<Option<PinnedKey>> {
        const OP: &str = "read a pinned host key";
        dispatch!(&self.pool, |pool| {
            sqlx::query(KEY_SELECT)
                .bind(cluster)
                .bind(host)
                .fetch_optional(pool)
                .await
                .map_err(self.query_err(OP))?
                .map(|row| self.key_from(&row, OP))
                .transpose()
        })
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
        let (begin, select) = self.write_transaction();
        let pinned = dispatch!(&self.pool, |pool| {
            let mut tx = pool.begin_with(begin).await.map_err(self.query_err(OP))?;
            let mut pinned = sqlx::query(select)
                .bind(cluster)
                .bind(host)
                .fetch_optional(&mut *tx)
                .await
                .map_err(self.query_err(OP))?
                .map(|row| self.key_from(&row, OP))
                .transpose()?;
            if pinned.is_none() {
                let inserted = sqlx::query(KEY_INSERT)
                    .bind(cluster)
                    .bind(host)
                    .bind(address)
                    .bind(algorithm)
                    .bind(fingerprint)
                    .bind(now_ms())
                    .execute(&mut *tx)
                    .await
                    .map_err(self.query_err(OP))?
                    .rows_affected();
                // Postgres's row lock cannot hold a row that does not exist yet: a concurrent
                // first contact may have pinned a key since. Its commit is visible to the
                // next statement, so compare with what it pinned.
                if inserted == 0 {
                    pinned = sqlx::query(KEY_SELECT)
                        .bind(cluster)
                        .bind(host)
                        .fetch_optional(&mut *tx)
                        .await
                        .map_err(self.query_err(OP))?
                        .map(|row| self.key_from(&row, OP))
                        .transpose()?;
                }
            }
            tx.commit().await.map_err(self.query_err(OP))?;
            pinned
        });
        match pinned {
            None => Ok(()),
            Some(pinned) if pinned.algorithm == algorithm && pinned.fingerprint == fingerprint => {
                Ok(())
            }
            Some(pinned) => Err(Error::KeyAlreadyPinned(Box::new(KeyConflict {
                cluster: cluster.to_owned(),
                host: host.to_owned(),
                pinned_algorithm: pinned.algorithm,
                pinned_fingerprint: pinned.fingerprint,
                offered_algorithm: algorithm.to_owned(),
                offered_fingerprint: fingerprint.to_owned(),
            }))),
        }
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
        let (begin, select) = self.write_transaction();
        let previous = dispatch!(&self.pool, |pool| {
            let mut tx = pool.begin_with(begin).await.map_err(self.query_err(OP))?;
            let previous = sqlx::query(select)
                .bind(cluster)
                .bind(host)
                .fetch_optional(&mut *tx)
                .await
                .map_err(self.query_err(OP))?
                .map(|row| self.key_from(&row, OP))
                .transpose()?;
            if previous.is_some() {
                sqlx::query(
                    "UPDATE host_keys SET algorithm = $1, fingerprint = $2, replaced_at = $3
                     WHERE cluster = $4 AND host = $5",
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
            }
            previous
        });
        previous.ok_or_else(|| Error::KeyNotPinned {
            path: self.path.clone(),
            cluster: cluster.to_owned(),
            host: host.to_owned(),
        })
    }

    /// Removes `host`'s pin, so the next contact pins whatever key it then sees. Returns
    /// whether there was one.
    pub async fn forget_key(&self, cluster: &str, host: &str) -> Result<bool> {
        let removed = dispatch!(&self.pool, |pool| {
            sqlx::query("DELETE FROM host_keys WHERE cluster = $1 AND host = $2")
                .bind(cluster)
                .bind(host)
                .execute(pool)
                .await
                .map(|done| done.rows_affected())
        })
        .map_err(self.query_err("forget a pinned host key"))?;
        Ok(removed > 0)
    }

    /// How a read-then-write of a pin excludes other writers: SQLite's `BEGIN IMMEDIATE`
    /// takes the write lock up front, so two first contacts with the same host cannot both
    /// see no pin; Postgres locks the pin's row as it reads it.
    fn write_transaction(&self) -> (&'static str, &'static str) {
        match self.backend() {
            Backend::Sqlite => ("BEGIN IMMEDIATE", KEY_SELECT),
            Backend::Postgres => ("BEGIN", KEY_SELECT_FOR_UPDATE),
        }
    }

    fn key_from(&self, row: &impl JournalRow, op: &'static str) -> Result<PinnedKey> {
        let cols = self.columns(row, op);
        Ok(PinnedKey {
            algorithm: cols.text("algorithm")?,
            fingerprint: cols.text("fingerprint")?,
            address: cols.text("address")?,
            first_seen_ms: cols.int("first_seen_at")?,
            replaced_ms: cols.opt_int("replaced_at")?,
        })
    }
}
