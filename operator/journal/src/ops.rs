//! Operations, their task events and per-host phase results.

use sqlx::{Row, Sqlite, error::ErrorKind, sqlite::SqliteRow};

use crate::{
    Journal, OUTPUT_TAIL_BYTES,
    error::{Error, Result},
    owner::Owner,
    redact::tail,
    time::now_ms,
    types::{
        EventRow, FinalStatus, HostOutcome, HostResult, NewOperation, OperationId, OperationKind,
        OperationStatus, OperationSummary, TaskRecord, TaskState,
    },
};

/// An operation with its counts. `hosts_failed` unites hosts with a failed task and hosts with
/// a failed phase result (a lost connection leaves no failed task).
const SUMMARY_SELECT: &str = "
SELECT o.id, o.kind, o.cluster, o.spec_digest, o.hosts, o.status, o.started_at, o.finished_at,
       o.summary, o.owner_pid,
       (SELECT COUNT(*) FROM task_events e WHERE e.operation_id = o.id AND e.status = 'changed')
           AS changed,
       (SELECT COUNT(*) FROM task_events e WHERE e.operation_id = o.id AND e.status = 'failed')
           AS failed,
       (SELECT COUNT(*) FROM (
            SELECT e.host FROM task_events e WHERE e.operation_id = o.id AND e.status = 'failed'
            UNION
            SELECT r.host FROM host_results r WHERE r.operation_id = o.id AND r.ok = 0))
           AS hosts_failed,
       (SELECT MAX(t) FROM (
            SELECT MAX(e.recorded_at) AS t FROM task_events e WHERE e.operation_id = o.id
            UNION ALL
            SELECT MAX(r.recorded_at) FROM host_results r WHERE r.operation_id = o.id))
           AS last_activity
FROM operations o";

const EVENT_SELECT: &str = "
SELECT id, host, phase, task, status, duration_ms, message, output, recorded_at
FROM task_events WHERE operation_id = ?";

impl Journal {
    /// Records the start of an operation owned by this process and returns its id.
    pub async fn begin(&self, op: NewOperation) -> Result<OperationId> {
        let owner = Owner::current()?;
        // A list of strings always serialises; the fallback only keeps the type honest.
        let hosts = serde_json::to_string(&op.hosts).unwrap_or_else(|_| "[]".to_owned());
        let done = sqlx::query(
            "INSERT INTO operations (kind, cluster, spec_digest, hosts, status, started_at,
                                     owner_pid, owner_start, owner_boot_id)
             VALUES (?, ?, ?, ?, 'running', ?, ?, ?, ?)",
        )
        .bind(op.kind.as_str())
        .bind(&op.cluster)
        .bind(&op.spec_digest)
        .bind(hosts)
        .bind(now_ms())
        .bind(i64::from(owner.pid))
        .bind(clamp(owner.start_ticks))
        .bind(&owner.boot_id)
        .execute(&self.pool)
        .await
        .map_err(self.query_err("record a new operation"))?;
        Ok(OperationId(done.last_insert_rowid()))
    }

    /// Records one task's result on one host. The message is redacted and the output redacted
    /// and cut to its last [`OUTPUT_TAIL_BYTES`]; the insert commits on its own.
    pub async fn record(&self, op: OperationId, ev: &TaskRecord) -> Result<()> {
        let message = self.redactor.redact(&ev.message);
        // Redact before cutting, so a cut cannot split a secret into parts no rule recognises.
        let output = self.redactor.redact(&ev.output);
        sqlx::query(
            "INSERT INTO task_events (operation_id, host, phase, task, status, duration_ms,
                                      message, output, recorded_at)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(op.0)
        .bind(&ev.host)
        .bind(&ev.phase)
        .bind(&ev.task)
        .bind(ev.status.as_str())
        .bind(clamp(ev.duration_ms))
        .bind(message)
        .bind(tail(&output, OUTPUT_TAIL_BYTES))
        .bind(now_ms())
        .execute(&self.pool)
        .await
        .map_err(|err| self.unknown_op_or(op, "record a task event", err))?;
        Ok(())
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
        sqlx::query(
            "INSERT INTO host_results (operation_id, host, phase, ok, error, recorded_at)
             VALUES (?, ?, ?, ?, ?, ?)
             ON CONFLICT (operation_id, host, phase)
             DO UPDATE SET ok = excluded.ok, error = excluded.error,
                           recorded_at = excluded.recorded_at",
        )
        .bind(op.0)
        .bind(host)
        .bind(phase)
        .bind(outcome.ok)
        .bind(error)
        .bind(now_ms())
        .execute(&self.pool)
        .await
        .map_err(|err| self.unknown_op_or(op, "record a host result", err))?;
        Ok(())
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
        let done = sqlx::query(
            "UPDATE operations SET status = ?, finished_at = ?, summary = ?
             WHERE id = ? AND status = 'running'",
        )
        .bind(status.as_str())
        .bind(now_ms())
        .bind(summary)
        .bind(op.0)
        .execute(&self.pool)
        .await
        .map_err(self.query_err("finish an operation"))?;
        if done.rows_affected() == 1 {
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
    pub async fn recover_interrupted(&self) -> Result<Vec<OperationId>> {
        let rows = sqlx::query(
            "SELECT id, owner_pid, owner_start, owner_boot_id FROM operations
             WHERE status = 'running' ORDER BY id",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(self.query_err("list running operations"))?;
        let mut recovered = Vec::new();
        for row in rows {
            const OP: &str = "read a running operation";
            let id: i64 = self.col(&row, "id", OP)?;
            let owner = Owner {
                pid: u32::try_from(self.col::<i64>(&row, "owner_pid", OP)?).unwrap_or(0),
                start_ticks: unsigned(self.col(&row, "owner_start", OP)?),
                boot_id: self.col(&row, "owner_boot_id", OP)?,
            };
            if owner.is_alive() {
                continue;
            }
            // The status condition keeps a concurrent recovery from stamping it twice.
            let done = sqlx::query(
                "UPDATE operations SET status = 'interrupted', finished_at = ?, summary = ?
                 WHERE id = ? AND status = 'running'",
            )
            .bind(now_ms())
            .bind(format!(
                "interrupted: owner process {} ended without finishing the operation",
                owner.pid
            ))
            .bind(id)
            .execute(&self.pool)
            .await
            .map_err(self.query_err("mark an operation interrupted"))?;
            if done.rows_affected() == 1 {
                recovered.push(OperationId(id));
            }
        }
        Ok(recovered)
    }

    /// The newest `limit` operations, newest first, with their counts.
    pub async fn operations(&self, limit: usize) -> Result<Vec<OperationSummary>> {
        let rows = sqlx::query(&format!("{SUMMARY_SELECT} ORDER BY o.id DESC LIMIT ?"))
            .bind(i64::try_from(limit).unwrap_or(i64::MAX))
            .fetch_all(&self.pool)
            .await
            .map_err(self.query_err("list operations"))?;
        rows.iter().map(|row| self.summary_from(row)).collect()
    }

    /// One operation with its counts, or `None` when the journal has no such id.
    pub async fn operation(&self, id: OperationId) -> Result<Option<OperationSummary>> {
        let row = sqlx::query(&format!("{SUMMARY_SELECT} WHERE o.id = ?"))
            .bind(id.0)
            .fetch_optional(&self.pool)
            .await
            .map_err(self.query_err("read an operation"))?;
        row.map(|row| self.summary_from(&row)).transpose()
    }

    /// An operation's task events in recording order, for all hosts or only `host`.
    pub async fn events(&self, id: OperationId, host: Option<&str>) -> Result<Vec<EventRow>> {
        let sql = match host {
            Some(_) => format!("{EVENT_SELECT} AND host = ? ORDER BY id"),
            None => format!("{EVENT_SELECT} ORDER BY id"),
        };
        let query = sqlx::query(&sql).bind(id.0);
        let query = match host {
            Some(host) => query.bind(host),
            None => query,
        };
        let rows = query
            .fetch_all(&self.pool)
            .await
            .map_err(self.query_err("list task events"))?;
        rows.iter().map(|row| self.event_from(row)).collect()
    }

    /// An operation's per-host phase results in the order they were first recorded.
    pub async fn host_results(&self, id: OperationId) -> Result<Vec<HostResult>> {
        let rows = sqlx::query(
            "SELECT host, phase, ok, error, recorded_at FROM host_results
             WHERE operation_id = ? ORDER BY id",
        )
        .bind(id.0)
        .fetch_all(&self.pool)
        .await
        .map_err(self.query_err("list host results"))?;
        const OP: &str = "read a host result";
        rows.iter()
            .map(|row| {
                Ok(HostResult {
                    host: self.col(row, "host", OP)?,
                    phase: self.col(row, "phase", OP)?,
                    ok: self.col(row, "ok", OP)?,
                    error: self.col(row, "error", OP)?,
                    recorded_ms: self.col(row, "recorded_at", OP)?,
                })
            })
            .collect()
    }

    fn summary_from(&self, row: &SqliteRow) -> Result<OperationSummary> {
        const OP: &str = "read an operation";
        let started_ms: i64 = self.col(row, "started_at", OP)?;
        let finished_ms: Option<i64> = self.col(row, "finished_at", OP)?;
        let status: String = self.col(row, "status", OP)?;
        let hosts: String = self.col(row, "hosts", OP)?;
        Ok(OperationSummary {
            id: OperationId(self.col(row, "id", OP)?),
            kind: OperationKind::parse(&self.col::<String>(row, "kind", OP)?),
            cluster: self.col(row, "cluster", OP)?,
            spec_digest: self.col(row, "spec_digest", OP)?,
            hosts: serde_json::from_str(&hosts)
                .map_err(|_| self.corrupt("an operation's host list", hosts.clone()))?,
            status: OperationStatus::parse(&status)
                .ok_or_else(|| self.corrupt("an operation status", status.clone()))?,
            started_ms,
            finished_ms,
            duration_ms: finished_ms.map(|end| unsigned(end.saturating_sub(started_ms))),
            last_activity_ms: self.col(row, "last_activity", OP)?,
            summary: self.col(row, "summary", OP)?,
            owner_pid: u32::try_from(self.col::<i64>(row, "owner_pid", OP)?).unwrap_or(0),
            changed: unsigned(self.col(row, "changed", OP)?),
            failed: unsigned(self.col(row, "failed", OP)?),
            hosts_failed: unsigned(self.col(row, "hosts_failed", OP)?),
        })
    }

    fn event_from(&self, row: &SqliteRow) -> Result<EventRow> {
        const OP: &str = "read a task event";
        let status: String = self.col(row, "status", OP)?;
        let status =
            TaskState::parse(&status).ok_or_else(|| self.corrupt("a task status", status))?;
        Ok(EventRow {
            seq: self.col(row, "id", OP)?,
            host: self.col(row, "host", OP)?,
            phase: self.col(row, "phase", OP)?,
            task: self.col(row, "task", OP)?,
            status,
            changed: status == TaskState::Changed,
            duration_ms: unsigned(self.col(row, "duration_ms", OP)?),
            message: self.col(row, "message", OP)?,
            output: self.col(row, "output", OP)?,
            recorded_ms: self.col(row, "recorded_at", OP)?,
        })
    }

    /// One column of a row, with a read failure named after `op`.
    pub(crate) fn col<'r, T>(&self, row: &'r SqliteRow, name: &str, op: &'static str) -> Result<T>
    where
        T: sqlx::Decode<'r, Sqlite> + sqlx::Type<Sqlite>,
    {
        row.try_get(name).map_err(self.query_err(op))
    }

    fn corrupt(&self, what: &'static str, value: String) -> Error {
        Error::Corrupt {
            path: self.path.clone(),
            what,
            value,
        }
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

/// SQLite integers are signed 64-bit; larger values (never seen in practice) saturate.
fn clamp(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

/// Counts and durations are never negative; a negative one (a clock stepped back) shows as 0.
fn unsigned(value: i64) -> u64 {
    u64::try_from(value).unwrap_or(0)
}
