//! One host's side of an operation: its connection, its agent and its blob store.

use std::{
    collections::{BTreeMap, BTreeSet},
    path::PathBuf,
};

use kubegrid_agent::{
    facts::Facts,
    protocol::{BlobHeader, Event, Plan, TaskStatus},
};

use crate::{
    agent::{self, AgentBinary, Agents},
    error::Error,
    ssh::{Connection, Input},
};

/// A blob the plan needs: its sha256, size and where the bytes are on this machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalBlob {
    /// sha256, lower-case hex.
    pub sha256: String,
    /// Size in bytes.
    pub size: u64,
    /// Local file.
    pub path: PathBuf,
}

/// One task's outcome as the agent reported it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskReport {
    /// Task name.
    pub name: String,
    /// Outcome.
    pub status: TaskStatus,
    /// Wall time on the host.
    pub duration_ms: u64,
    /// What changed, or why it failed.
    pub message: String,
    /// Output tail.
    pub output: String,
}

impl TaskReport {
    /// The report a `TaskFinished` event carries; None for other events.
    pub fn from_event(ev: &Event) -> Option<TaskReport> {
        match ev {
            Event::TaskFinished {
                name,
                status,
                duration_ms,
                message,
                output,
                ..
            } => Some(TaskReport {
                name: name.clone(),
                status: *status,
                duration_ms: *duration_ms,
                message: message.clone(),
                output: output.clone(),
            }),
            _ => None,
        }
    }
}

/// What one plan run produced.
#[derive(Debug, Clone, Default)]
pub struct PlanOutcome {
    /// Facts, when the plan had a facts task.
    pub facts: Option<Facts>,
    /// Finished tasks, in order.
    pub tasks: Vec<TaskReport>,
    /// Why the host failed this phase, if it did.
    pub failure: Option<String>,
}

impl PlanOutcome {
    /// Tasks that changed (or would change).
    pub fn changed(&self) -> usize {
        self.tasks
            .iter()
            .filter(|t| t.status == TaskStatus::Changed)
            .count()
    }
}

/// A connected host.
#[derive(Debug)]
pub struct HostSession {
    conn: Connection,
    agent: Option<AgentBinary>,
    installed: bool,
    arch: Option<String>,
    store: BTreeSet<String>,
    partials: BTreeMap<String, u64>,
    blob_source: Option<String>,
    round_trips: usize,
}

impl HostSession {
    /// Wraps a fresh connection.
    pub fn new(conn: Connection) -> Self {
        HostSession {
            conn,
            agent: None,
            installed: false,
            arch: None,
            store: BTreeSet::new(),
            partials: BTreeMap::new(),
            blob_source: None,
            round_trips: 0,
        }
    }

    /// The connection.
    pub fn connection(&self) -> &Connection {
        &self.conn
    }

    /// Goes on over a new connection to the same host (after a reboot dropped the old one),
    /// keeping what the session learnt: its agent, architecture and blob store live on the
    /// host's disk. Returns the old connection.
    pub fn replace_connection(&mut self, conn: Connection) -> Connection {
        std::mem::replace(&mut self.conn, conn)
    }

    /// The architecture found by [`HostSession::probe`].
    pub fn arch(&self) -> Option<&str> {
        self.arch.as_deref()
    }

    fn host(&self) -> &str {
        &self.conn.target().host
    }

    /// The agent [`HostSession::probe`] chose for the host, and whether the host had it.
    pub fn agent_used(&self) -> Option<crate::operation::AgentUsed> {
        let (agent, arch) = (self.agent.as_ref()?, self.arch.as_ref()?);
        Some(crate::operation::AgentUsed {
            arch: arch.clone(),
            sha256: agent.sha256.clone(),
            source: agent.source.clone(),
            already_on_host: self.installed,
        })
    }

    /// Round trip one: asks the host for its architecture and whether our agent is there.
    pub async fn probe(&mut self, agents: &Agents) -> Result<String, Error> {
        let script = agent::privileged(&agent::probe_script(agents), self.conn.target().sudo);
        let mut lines = Vec::new();
        let out = self
            .conn
            .exec(&script, Vec::new(), |l| lines.push(l.to_string()))
            .await?;
        if out.exit != Some(0) {
            return Err(self.exec_failure("probing the host", &out.stderr, out.exit));
        }
        let machine = lines.first().cloned().unwrap_or_default();
        let arch = agent::arch_from_uname(&machine).ok_or_else(|| Error::Protocol {
            host: self.host().to_string(),
            message: format!(
                "unsupported machine architecture {machine:?}; expected x86_64 or aarch64"
            ),
        })?;
        let binary = agents.for_arch(self.host(), &machine, arch)?.clone();
        let remote = binary.remote_path();
        self.installed = lines
            .iter()
            .any(|l| l.strip_prefix("have ") == Some(remote.as_str()));
        self.agent = Some(binary);
        self.arch = Some(arch.to_string());
        Ok(arch.to_string())
    }

    /// SSH round trips (commands run) since the last call; phases report them so the
    /// "at most two per host per phase" budget is visible in every report.
    pub fn take_round_trips(&mut self) -> usize {
        std::mem::take(&mut self.round_trips)
    }

    /// Records blobs the host already has (from its facts), so they are not sent again.
    pub fn note_store(&mut self, shas: impl IntoIterator<Item = String>) {
        self.store.extend(shas);
    }

    /// Whether the host's store lacks a blob, as far as this session knows.
    pub fn lacks(&self, sha256: &str) -> bool {
        !self.store.contains(sha256)
    }

    /// Where the host fetches the blobs of the next plan: a blob server URL prefix to which
    /// the sha256 is appended, or None to push them over SSH (see
    /// [`crate::distribute::Distributor::route`]). It holds for one plan only, since the
    /// server serves only the blobs routed with it.
    pub fn set_blob_source(&mut self, base_url: Option<String>) {
        self.blob_source = base_url;
    }

    /// The header announcing `blob`: a URL to fetch it from, or its bytes on stdin from
    /// where a cut push left its partial file (as the host's facts reported).
    fn blob_header(&self, blob: &LocalBlob) -> BlobHeader {
        let mut header = BlobHeader::stdin(blob.sha256.clone(), blob.size);
        match &self.blob_source {
            Some(base) => header.url = Some(format!("{base}{}", blob.sha256)),
            None => {
                header.offset = self
                    .partials
                    .get(&blob.sha256)
                    .copied()
                    .filter(|&have| have < blob.size)
                    .unwrap_or(0);
            }
        }
        header
    }

    /// Runs one plan: one round trip carrying the agent (only if the host lacks it), the
    /// plan line and the blobs the host lacks; events stream back through `on_event`.
    ///
    /// The agent is installed on the host only by a plan that may change it (`persist`): the
    /// read-only phases before preflight, and dry runs, use a copy that is removed afterwards,
    /// so a refused operation leaves nothing behind.
    pub async fn run_plan(
        &mut self,
        mut plan: Plan,
        persist: bool,
        blobs: &[LocalBlob],
        mut on_event: impl FnMut(&Event),
    ) -> Result<PlanOutcome, Error> {
        let agent = self.agent.clone().ok_or_else(|| Error::Protocol {
            host: self.host().to_string(),
            message: "plan run before the host was probed".into(),
        })?;
        let mut input = Vec::new();
        let check = plan.check_mode;
        let persist = persist && !check;
        let script = if self.installed {
            agent::run_installed(&agent, "run")
        } else {
            input.push(Input::File(agent.path.clone()));
            if persist {
                agent::install_and_run(&agent, "run")
            } else {
                agent::run_transient(&agent)
            }
        };
        let send: Vec<&LocalBlob> = if check {
            Vec::new()
        } else {
            blobs
                .iter()
                .filter(|b| !self.store.contains(&b.sha256))
                .collect()
        };
        plan.blobs = send.iter().map(|b| self.blob_header(b)).collect();
        self.blob_source = None;
        let mut line = serde_json::to_vec(&plan).map_err(|e| Error::Protocol {
            host: self.host().to_string(),
            message: format!("cannot encode the plan: {e}"),
        })?;
        line.push(b'\n');
        input.push(Input::Bytes(line));
        input.extend(
            send.iter()
                .zip(&plan.blobs)
                .filter(|(_, h)| h.url.is_none())
                .map(|(b, h)| Input::FileAt(b.path.clone(), h.offset)),
        );

        let mut outcome = PlanOutcome::default();
        let mut fatal = None;
        let mut garbage = None;
        let mut finished = false;
        let script = agent::privileged(&script, self.conn.target().sudo);
        self.round_trips += 1;
        let out = self
            .conn
            .exec(&script, input, |l| match serde_json::from_str::<Event>(l) {
                Ok(ev) => {
                    match &ev {
                        Event::Facts { facts, .. } => outcome.facts = Some((**facts).clone()),
                        Event::TaskFinished { .. } => {
                            outcome.tasks.extend(TaskReport::from_event(&ev))
                        }
                        Event::Fatal { message } => fatal = Some(message.clone()),
                        Event::PlanFinished { .. } => finished = true,
                        Event::Hello { .. }
                        | Event::BlobStarted { .. }
                        | Event::BlobProgress { .. }
                        | Event::BlobRetry { .. }
                        | Event::BlobStored { .. }
                        | Event::TaskStarted { .. } => {}
                    }
                    on_event(&ev);
                }
                Err(_) if garbage.is_none() => garbage = Some(l.to_string()),
                Err(_) => {}
            })
            .await?;
        if persist && !self.installed && out.exit.is_some_and(|c| c != 97) {
            self.installed = true;
        }
        if !check {
            self.store.extend(send.iter().map(|b| b.sha256.clone()));
            for b in &send {
                self.partials.remove(&b.sha256);
            }
        }
        if let Some(f) = &outcome.facts {
            self.partials = f.partials.clone();
        }
        if let Some(t) = outcome
            .tasks
            .iter()
            .find(|t| t.status == TaskStatus::Failed)
        {
            outcome.failure = Some(format!("task {:?} failed: {}", t.name, t.message));
        } else if let Some(m) = fatal {
            outcome.failure = Some(format!("agent refused the plan: {m}"));
        } else if out.exit.is_none() {
            outcome.failure =
                Some("connection lost before the agent finished (host down or rebooted?)".into());
        } else if out.exit != Some(0) || !finished {
            return Err(self.exec_failure(
                &format!(
                    "running the agent{}",
                    garbage
                        .map(|g| format!(" (it printed {g:?})"))
                        .unwrap_or_default()
                ),
                &out.stderr,
                out.exit,
            ));
        }
        Ok(outcome)
    }

    /// Runs the agent's `fanout` subcommand (installing the agent first where the host
    /// lacks it) with `job` as its one stdin line, keeping stdin open until `hold` turns
    /// true; its stdout lines go to `on_line`. Fails when the agent cannot run at all
    /// (exit 2 or worse); whether its blobs arrived is in the lines.
    pub async fn run_fanout(
        &mut self,
        job: Vec<u8>,
        hold: tokio::sync::watch::Receiver<bool>,
        on_line: impl FnMut(&str),
    ) -> Result<crate::ssh::ExecOutput, Error> {
        let agent = self.agent.clone().ok_or_else(|| Error::Protocol {
            host: self.host().to_string(),
            message: "distribution started before the host was probed".into(),
        })?;
        let mut input = Vec::new();
        let script = if self.installed {
            agent::run_installed(&agent, "fanout")
        } else {
            input.push(Input::File(agent.path.clone()));
            agent::install_and_run(&agent, "fanout")
        };
        input.push(Input::Bytes(job));
        input.push(Input::Hold(hold));
        let script = agent::privileged(&script, self.conn.target().sudo);
        self.round_trips += 1;
        let out = self.conn.exec(&script, input, on_line).await?;
        if !self.installed && out.exit.is_some_and(|c| c != 97) {
            self.installed = true;
        }
        if out.exit.is_none_or(|c| c >= 2) {
            return Err(self.exec_failure("running the agent's fan-out", &out.stderr, out.exit));
        }
        Ok(out)
    }

    fn exec_failure(&self, what: &str, stderr: &str, exit: Option<u32>) -> Error {
        let stderr = stderr.trim();
        let hint = if stderr.contains("a password is required")
            || stderr.contains("a terminal is required")
        {
            format!(
                "\n  hint: {} needs passwordless sudo (NOPASSWD) for kubegrid",
                self.conn.target().user
            )
        } else {
            String::new()
        };
        Error::Protocol {
            host: self.host().to_string(),
            message: format!(
                "{what} failed (exit {}): {}{hint}",
                exit.map_or("none".to_string(), |c| c.to_string()),
                if stderr.is_empty() {
                    "no error output"
                } else {
                    stderr
                },
            ),
        }
    }
}
