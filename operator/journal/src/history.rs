//! Reading operations back: summaries with their counts, task events and phase results.

use crate::{
    Journal,
    backend::{JournalRow, dispatch},
    error::{Error, Result},
    ops::unsigned,
    types::{
        EventRow, HostResult, OperationId, OperationKind, OperationStatus, OperationSummary,
        TaskState,
    },
};

/// An operation with its counts. `hosts_failed` unites hosts with a failed task and hosts with
/// a failed phase result (a lost connection leaves no failed task). Subqueries in FROM carry
/// aliases, which Postgres before 16 requires.
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
            SELECT r.host FROM host_results r WHERE r.operation_id = o.id AND NOT r.ok)
            AS failed_hosts)
           AS hosts_failed,
       (SELECT MAX(t) FROM (
            SELECT MAX(e.recorded_at) AS t FROM task_events e WHERE e.operation_id = o.id
            UNION ALL
            SELECT MAX(r.recorded_at) FROM host_results r WHERE r.operation_id = o.id)
            AS activity)
           AS last_activity
FROM operations o";

const EVENT_SELECT: &str = "
SELECT id, host, phase, task, status, duration_ms, message, output, recorded_at
FROM task_events WHERE operation_id = $1";

impl Journal {
    /// The newest `limit` operations, newest first, with their counts.
    pub async fn operations(&self, limit: usize) -> Result<Vec<OperationSummary>> {
        let sql = format!("{SUMMARY_SELECT} ORDER BY o.id DESC LIMIT $1");
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        dispatch!(&self.pool, |pool| {
            sqlx::query(&sql)
                .bind(limit)
                .fetch_all(pool)
                .await
                .map_err(self.query_err("list operations"))?
                .iter()
                .map(|row| self.summary_from(row))
                .collect()
        })
    }

    /// One operation with its counts, or `None` when the journal has no such id.
    pub async fn operation(&self, id: OperationId) -> Result<Option<OperationSummary>> {
        let sql = format!("{SUMMARY_SELECT} WHERE o.id = $1");
        dispatch!(&self.pool, |pool| {
            sqlx::query(&sql)
                .bind(id.0)
                .fetch_optional(pool)
                .await
                .map_err(self.query_err("read an operation"))?
                .map(|row| self.summary_from(&row))
                .transpose()
        })
    }

    /// The newest operation of `cluster` (the highest id), with its counts, or `None` when
    /// the cluster has none. An operator reads it to resume or report on a cluster's work.
    pub async fn latest_operation(&self, cluster: &str) -> Result<Option<OperationSummary>> {
        let sql = format!("{SUMMARY_SELECT} WHERE o.cluster = $1 ORDER BY o.id DESC LIMIT 1");
        dispatch!(&self.pool, |pool| {
            sqlx::query(&sql)
                .bind(cluster)
                .fetch_optional(pool)
                .await
                .map_err(self.query_err("read a cluster's latest operation"))?
                .map(|row| self.summary_from(&row))
                .transpose()
        })
    }

    /// The newest operation of `cluster` of any kind but `kind` (its stored text, e.g.
    /// `certs`): the operator's periodic certificate checks must not hide the install or
    /// upgrade that carried out the spec.
    pub async fn latest_operation_except(
        &self,
        cluster: &str,
        kind: &str,
    ) -> Result<Option<OperationSummary>> {
        let sql = format!(
            "{SUMMARY_SELECT} WHERE o.cluster = $1 AND o.kind <> $2 ORDER BY o.id DESC LIMIT 1"
        );
        dispatch!(&self.pool, |pool| {
            sqlx::query(&sql)
                .bind(cluster)
                .bind(kind)
                .fetch_optional(pool)
                .await
                .map_err(self.query_err("read a cluster's latest operation"))?
                .map(|row| self.summary_from(&row))
                .transpose()
        })
    }

    /// An operation's task events in recording order, for all hosts or only `host`.
    pub async fn events(&self, id: OperationId, host: Option<&str>) -> Result<Vec<EventRow>> {
        let sql = match host {
            Some(_) => format!("{EVENT_SELECT} AND host = $2 ORDER BY id"),
            None => format!("{EVENT_SELECT} ORDER BY id"),
        };
        dispatch!(&self.pool, |pool| {
            let query = sqlx::query(&sql).bind(id.0);
            let query = match host {
                Some(host) => query.bind(host),
                None => query,
            };
            query
                .fetch_all(pool)
                .await
                .map_err(self.query_err("list task events"))?
                .iter()
                .map(|row| self.event_from(row))
                .collect()
        })
    }

    /// An operation's per-host phase results (one per host and phase, the latest recorded)
    /// in the order they were first recorded.
    pub async fn host_results(&self, id: OperationId) -> Result<Vec<HostResult>> {
        const OP: &str = "read a host result";
        dispatch!(&self.pool, |pool| {
            sqlx::query(
                "SELECT host, phase, ok, error, recorded_at FROM host_results
                 WHERE operation_id = $1 ORDER BY id",
            )
            .bind(id.0)
            .fetch_all(pool)
            .await
            .map_err(self.query_err("list host results"))?
            .iter()
            .map(|row| {
                let cols = self.columns(row, OP);
                Ok(HostResult {
                    host: cols.text("host")?,
                    phase: cols.text("phase")?,
                    ok: cols.flag("ok")?,
                    error: cols.opt_text("error")?,
                    recorded_ms: cols.int("recorded_at")?,
                })
            })
            .collect()
        })
    }

    fn summary_from(&self, row: &impl JournalRow) -> Result<OperationSummary> {
        let cols = self.columns(row, "read an operation");
        let started_ms = cols.int("started_at")?;
        let finished_ms = cols.opt_int("finished_at")?;
        let status = cols.text("status")?;
        let hosts = cols.text("hosts")?;
        Ok(OperationSummary {
            id: OperationId(cols.int("id")?),
            kind: OperationKind::parse(&cols.text("kind")?),
            cluster: cols.text("cluster")?,
            spec_digest: cols.text("spec_digest")?,
            hosts: serde_json::from_str(&hosts)
                .map_err(|_| self.corrupt("an operation's host list", hosts.clone()))?,
            status: OperationStatus::parse(&status)
                .ok_or_else(|| self.corrupt("an operation status", status.clone()))?,
            started_ms,
            finished_ms,
            duration_ms: finished_ms.map(|end| unsigned(end.saturating_sub(started_ms))),
            last_activity_ms: cols.opt_int("last_activity")?,
            summary: cols.opt_text("summary")?,
            owner_pid: u32::try_from(cols.int("owner_pid")?).unwrap_or(0),
            changed: unsigned(cols.int("changed")?),
            failed: unsigned(cols.int("failed")?),
            hosts_failed: unsigned(cols.int("hosts_failed")?),
        })
    }

    fn event_from(&self, row: &impl JournalRow) -> Result<EventRow> {
        let cols = self.columns(row, "read a task event");
        let status = cols.text("status")?;
        let status =
            TaskState::parse(&status).ok_or_else(|| self.corrupt("a task status", status))?;
        Ok(EventRow {
            seq: cols.int("id")?,
            host: cols.text("host")?,
            phase: cols.text("phase")?,
            task: cols.text("task")?,
            status,
            changed: status == TaskState::Changed,
            duration_ms: unsigned(cols.int("duration_ms")?),
            message: cols.text("message")?,
            output: cols.text("output")?,
            recorded_ms: cols.int("recorded_at")?,
        })
    }

    fn corrupt(&self, what: &'static str, value: String) -> Error {
        Error::Corrupt {
            path: self.path.clone(),
            what,
            value,
        }
    }
}
