//! Recording operations: their start, task events, per-host phase results and end, and
//! marking the ones whose owner stopped as interrupted.

use sqlx::error::ErrorKind;

use crate::{
    Journal, OUTPUT_TAIL_BYTES,
    backend::{Backend, dispatch},
    error::{Error, Result},
    owner::Owner,
    redact::tail,
    time::now_ms,
    types::{FinalStatus, HostOutcome, NewOperation, OperationId, TaskRecord},
};

/// Marks one running operation interrupted; the status condition keeps a concurrent recovery
/// (or a concurrent `finish`) from stamping it twice.
const MARK_INTERRUPTED: &str = "
UPDATE operations SET status = 'interrupted', finished_at = $1, summary = $2
WHERE id = $3 AND status = 'running'";

impl Journal {
    /// Records the start of an operation owned by this process and returns its id.
    pub async fn begin(&self, op: NewOperation) -> Result<OperationId> {
        let owner = Owner::current()?;
        // A list of strings always serialises; the fallback only keeps the type honest.
        let hosts = serde_json::to_string(&op.hosts).unwrap_or_else(|_| "[]".to_owned());
        let id = dispatch!(&self.pool, |pool| {
            sqlx::query_scalar::<_, i64>(
                "INSERT INTO operations (kind, cluster, spec_digest, hosts, status, started_at,
                                         owner_pid, owner_start, owner_boot_id)
                 VALUES ($1, $2, $3, $4, 'running', $5, $6, $7, $8)
                 RETURNING id",
            )
            .bind(op.kind.as_str())
            .bind(&op.cluster)
            .bind(&op.spec_digest)
            .bind(&hosts)
            .bind(now_ms())
            .bind(i64::from(owner.pid))
            .bind(clamp(owner.start_ticks))
            .bind(&owner.boot_id)
            .fetch_one(pool)
            .await
        })
        .map_err(self.query_err("record a new operation"))?;
        Ok(OperationId(id))
    }

    /// Records one task's result on one host. The message is redacted and the output redacted
    /// and cut to its last [`OUTPUT_TAIL_BYTES`]; the insert commits on its own.
    pub async fn record(&self, op: OperationId, ev: &TaskRecord) -> Result<()> {
        let message = self.redactor.redact(&ev.message);
        // Redact before cutting, so a cut cannot split a secret into parts no rule recognises.
        let output = self.redactor.redact(&ev.output);
        let output = tail(&output, OUTPUT_TAIL_BYTES);
        dispatch!(&self.pool, |pool| {
            sqlx::query(
                "INSERT INTO task_events (operation_id, host, phase, task, status, duration_ms,
                                          message, output, recorded_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
            )
            .bind(op.0)
            .bind(&ev.host)
            .bind(&ev.phase)
            .bind(&ev.task)
            .bind(ev.status.as_str())
            .bind(clamp(ev.duration_ms))
            .bind(&message)
            .bind(output)
            .bind(now_ms())
            .execute(pool)
            .await
            .map(drop)
        })
        .map_err(|err| self.unknown_op_or(op, "record a task event", err))
    }

    /// Records how `host` came out of `phase`; a second result for the same host and phase
    /// replaces the first. The error text is redacted.
    pub async fn host_result(
        &self,
        op: OperationId,
        host: &str,
        phase: &str,
        outcome: HostOutcome,
    ) -> Result<()> {
        let error = outcome
            .error
            .as_deref()
            .map(|text| self.redactor.redact(text));
        dispatch!(&self.pool, |pool| {
            sqlx::query(
                "INSERT INTO host_results (operation_id, host, phase, ok, error, recorded_at)
                 VALUES ($1, $2, $3, $4, $5, $6)
                 ON CONFLICT (operation_id, host, phase)
                 DO UPDATE SET ok = excluded.ok, error = excluded.error,
                               recorded_at = excluded.recorded_at",
            )
            .bind(op.0)
            .bind(host)
            .bind(phase)
            .bind(outcome.ok)
            .bind(&error)
            .bind(now_ms())
            .execute(pool)
            .await
            .map(drop)
        })
        .map_err(|err| self.unknown_op_or(op, "record a host result", err))
    }

    /// Ends a running operation with `status` and an optional (redacted) summary. Fails when
    /// the operation is unknown or already ended, for instance marked interrupted.
    pub async fn finish(
        &self,
        op: OperationId,
        status: FinalStatus,
        summary: Option<String>,
    ) -> Result<()> {
        let summary = summary.map(|text| self.redactor.redact(&text));
        let updated = dispatch!(&self.pool, |pool| {
            sqlx::query(
                "UPDATE operations SET status = $1, finished_at = $2, summary = $3
                 WHERE id = $4 AND status = 'running'",
            )
            .bind(status.as_str())
            .bind(now_ms())
            .bind(&summary)
            .bind(op.0)
            .execute(pool)
            .await
            .map(|done| done.rows_affected())
        })
        .map_err(self.query_err("finish an operation"))?;
        if updated == 1 {
            return Ok(());
        }
        match self.operation(op).await? {
            None => Err(self.unknown_op(op)),
            Some(found) => Err(Error::AlreadyFinished {
                path: self.path.clone(),
                id: op,
                status: found.status,
            }),
        }
    }

    /// Marks running operations whose owner process is gone (exited, killed, or its pid now
    /// belongs to another process) as interrupted, and returns their ids. Operations owned by
    /// live processes, this one included, are left alone.
    ///
    /// On SQLite an owner with another boot id is gone (the machine rebooted). On Postgres,
    /// which replicas on other machines share, another boot id means a process this machine
    /// cannot see, so those operations are left alone too: an operator that has become
    /// leader recovers them with [`Journal::interrupt_running`]. Pids are only meaningful in
    /// one pid namespace, so replicas on the same machine must not call this while another
    /// one may run an operation (the operator's leader Lease ensures that).
    pub async fn recover_interrupted(&self) -> Result<Vec<OperationId>> {
        const OP: &str = "read a running operation";
        let here = match self.backend() {
            Backend::Sqlite => None,
            Backend::Postgres => Some(Owner::current()?.boot_id),
        };
        let running = dispatch!(&self.pool, |pool| {
            sqlx::query(
                "SELECT id, owner_pid, owner_start, owner_boot_id FROM operations
                 WHERE status = 'running' ORDER BY id",
            )
            .fetch_all(pool)
            .await
            .map_err(self.query_err("list running operations"))?
            .iter()
            .map(|row| {
                let cols = self.columns(row, OP);
                let owner = Owner {
                    pid: u32::try_from(cols.int("owner_pid")?).unwrap_or(0),
                    start_ticks: unsigned(cols.int("owner_start")?),
                    boot_id: cols.text("owner_boot_id")?,
                };
                Ok((cols.int("id")?, owner))
            })
            .collect::<Result<Vec<_>>>()?
        });
        let mut recovered = Vec::new();
        for (id, owner) in running {
            if here.as_ref().is_some_and(|here| *here != owner.boot_id) || owner.is_alive() {
                continue;
            }
            let reason = format!(
                "interrupted: owner process {} ended without finishing the operation",
                owner.pid
            );
            let updated = dispatch!(&self.pool, |pool| {
                sqlx::query(MARK_INTERRUPTED)
                    .bind(now_ms())
                    .bind(&reason)
                    .bind(id)
                    .execute(pool)
                    .await
                    .map(|done| done.rows_affected())
            })
            .map_err(self.query_err("mark an operation interrupted"))?;
            if updated == 1 {
                recovered.push(OperationId(id));
            }
        }
        Ok(recovered)
    }

    /// Marks every running operation of `cluster` interrupted, whoever owns it, with the
    /// (redacted) `reason` as its summary, and returns their ids in ascending order.
    ///
    /// This is recovery for operator replicas that share a Postgres journal, where process
    /// ids say nothing about another replica: the replica that has just won the leader Lease
    /// calls it before it acts on `cluster`, since winning the Lease means the previous
    /// leader has stopped. Operations of this process are marked too, so call it before
    /// starting work, not during.
    pub async fn interrupt_running(&self, cluster: &str, reason: &str) -> Result<Vec<OperationId>> {
        let reason = self.redactor.redact(reason);
        let mut ids = dispatch!(&self.pool, |pool| {
            sqlx::query_scalar::<_, i64>(
                "UPDATE operations SET status = 'interrupted', finished_at = $1, summary = $2
                 WHERE cluster = $3 AND status = 'running'
                 RETURNING id",
            )
            .bind(now_ms())
            .bind(&reason)
            .bind(cluster)
            .fetch_all(pool)
            .await
        })
        .map_err(self.query_err("mark a cluster's running operations interrupted"))?;
        ids.sort_unstable();
        Ok(ids.into_iter().map(OperationId).collect())
    }

    pub(crate) fn unknown_op(&self, id: OperationId) -> Error {
        Error::UnknownOperation {
            path: self.path.clone(),
            id,
        }
    }

    /// A foreign-key failure on insert means the operation id is not in the journal.
    fn unknown_op_or(&self, id: OperationId, op: &'static str, err: sqlx::Error) -> Error {
        match &err {
            sqlx::Error::Database(db) if db.kind() == ErrorKind::ForeignKeyViolation => {
                self.unknown_op(id)
            }
            _ => self.query_err(op)(err),
        }
    }
}

/// Both backends store signed 64-bit integers; larger values (never seen in practice)
/// saturate.
fn clamp(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

/// Counts and durations are never negative; a negative one (a clock stepped back) shows as 0.
pub(crate) fn unsigned(value: i64) -> u64 {
    u64::try_from(value).unwrap_or(0)
}
