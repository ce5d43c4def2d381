//! The runner: one plan in on stdin, events out on stdout.
//!
//! Stdin holds one JSON plan line, then the raw bytes of each blob the plan announces for
//! stdin, in order; blobs with a URL are fetched over HTTP instead. Every event is flushed
//! as soon as it is written, since the engine streams them to the terminal and the journal
//! as they come.

use std::{
    fs::{self, File, OpenOptions},
    io::{self, BufRead, Read, Write},
    panic::{AssertUnwindSafe, catch_unwind},
    path::{Path, PathBuf},
    time::Instant,
};

use nix::{
    errno::Errno,
    fcntl::{Flock, FlockArg},
};

use crate::{
    checks,
    error::{Error, Result},
    facts,
    fetch::{self, FetchConfig},
    fsutil::write_err,
    protocol::{
        Action, BlobHeader, DEFAULT_STATE_DIR, DEFAULT_STORE_DIR, Event, PROTOCOL_VERSION, Plan,
        TaskStatus,
    },
    store::Partial,
    tasks::{self, Ctx, Outcome},
};

/// How a run ended; the process exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// Every task succeeded.
    Ok,
    /// A task failed (its event says why); later tasks did not run, but cleanups marked
    /// `always`.
    TaskFailed,
    /// The plan could not run at all (a `Fatal` event says why, if stdout still worked).
    Fatal,
}

impl Exit {
    /// 0, 1 or 2.
    pub fn code(self) -> u8 {
        match self {
            Self::Ok => 0,
            Self::TaskFailed => 1,
            Self::Fatal => 2,
        }
    }
}

/// Runs the plan on `input`, writing events to `out`. `root` is where the host's own files
/// are ("/"; tests pass a fake tree).
pub fn run(input: &mut impl BufRead, out: &mut impl Write, root: &Path) -> Exit {
    let hello = Event::Hello {
        protocol: PROTOCOL_VERSION,
        version: env!("CARGO_PKG_VERSION").to_string(),
    };
    if emit(out, &hello).is_err() {
        return Exit::Fatal;
    }
    match run_plan(input, out, root) {
        Ok(exit) => exit,
        Err(e) => {
            // When stdout itself failed there is nobody left to tell.
            let _ = emit(
                out,
                &Event::Fatal {
                    message: one_line(&e.to_string()),
                },
            );
            Exit::Fatal
        }
    }
}

fn run_plan(input: &mut impl BufRead, out: &mut impl Write, root: &Path) -> Result<Exit> {
    let plan = read_plan(input)?;
    let mut ctx = Ctx {
        root: root.to_path_buf(),
        store_dir: plan
            .store_dir
            .clone()
            .unwrap_or_else(|| DEFAULT_STORE_DIR.into()),
        state_dir: plan
            .state_dir
            .clone()
            .unwrap_or_else(|| DEFAULT_STATE_DIR.into()),
        check_mode: plan.check_mode,
        verified: Default::default(),
    };
    // Read-only runs (facts before preflight, dry runs) must leave no trace on the host, not
    // even the state directory, and cannot race with anything, so they take no lock.
    let read_only = plan.check_mode
        || (plan.blobs.is_empty()
            && plan
                .tasks
                .iter()
                .all(|t| matches!(t.action, Action::Facts(_))));
    let _lock = if read_only {
        None
    } else {
        Some(lock(&ctx.state_dir)?)
    };
    let fetch_config = FetchConfig::default();
    for header in &plan.blobs {
        match &header.url {
            Some(url) => {
                fetch::fetch(header, url, &ctx.store_dir, &fetch_config, &mut |e| {
                    emit(out, e)
                })?;
            }
            None => {
                receive_blob(input, header, &ctx.store_dir, &mut |e| emit(out, e))?;
            }
        }
        ctx.verified.insert(header.sha256.clone());
    }
    let mut changed = 0;
    let mut ok = true;
    for (index, task) in plan.tasks.iter().enumerate() {
        // After a failure only the cleanups run; the others are not even announced.
        if !ok && !task.always {
            continue;
        }
        let name = task.name.clone();
        emit(
            out,
            &Event::TaskStarted {
                index,
                name: name.clone(),
            },
        )?;
        let start = Instant::now();
        let result = match &task.action {
            Action::Facts(args) => {
                let facts = facts::gather(&ctx.root, args, &ctx.store_dir);
                emit(
                    out,
                    &Event::Facts {
                        index,
                        facts: Box::new(facts),
                    },
                )?;
                Ok(Outcome::unchanged("facts gathered"))
            }
            action => catch_unwind(AssertUnwindSafe(|| execute(action, &ctx)))
                .unwrap_or_else(|panic| Err(panicked(&panic))),
        };
        let (status, message, output) = match result {
            Ok(o) if o.changed => {
                changed += 1;
                let message = if ctx.check_mode {
                    format!("would {}", o.message)
                } else {
                    o.message
                };
                (TaskStatus::Changed, message, o.output)
            }
            Ok(o) => (TaskStatus::Unchanged, o.message, o.output),
            Err(e) => (TaskStatus::Failed, e.to_string(), e.output().to_string()),
        };
        emit(
            out,
            &Event::TaskFinished {
                index,
                name,
                status,
                duration_ms: u64::try_from(start.elapsed().as_millis()).unwrap_or(u64::MAX),
                message: one_line(&message),
                output,
            },
        )?;
        if status == TaskStatus::Failed {
            ok = false;
        }
    }
    emit(out, &Event::PlanFinished { ok, changed })?;
    Ok(if ok { Exit::Ok } else { Exit::TaskFailed })
}

/// Dispatches every action but facts, which needs the event stream.
fn execute(action: &Action, ctx: &Ctx) -> Result<Outcome> {
    match action {
        Action::Facts(_) => Ok(Outcome::unchanged("facts gathered")),
        Action::File(a) => tasks::file::apply(a, ctx),
        Action::Packages(a) => tasks::packages::apply(a, ctx),
        Action::SystemdUnit(a) => tasks::systemd_unit::apply(a, ctx),
        Action::Sysctl(a) => tasks::sysctl::apply(a, ctx),
        Action::KernelModules(a) => tasks::kernel_modules::apply(a, ctx),
        Action::SwapOff(_) => tasks::swap_off::apply(ctx),
        Action::Command(a) => tasks::command::apply(a, ctx),
        Action::Check(a) => checks::apply(a, ctx),
        Action::Binary(a) => tasks::binary::apply(a, ctx),
        Action::Archive(a) => tasks::archive::apply(a, ctx),
        Action::Certificates(a) => tasks::certificates::apply(a, ctx),
    }
}

fn panicked(panic: &Box<dyn std::any::Any + Send>) -> Error {
    let what = panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into());
    Error::Panicked { what }
}

/// Reads the plan line, checking the protocol before the shape so that a plan from a newer
/// engine is refused for its version, not for a field this agent does not know.
pub fn read_plan(input: &mut impl BufRead) -> Result<Plan> {
    let mut line = Vec::new();
    let n = input
        .read_until(b'\n', &mut line)
        .map_err(|source| Error::ReadPlan { source })?;
    if n == 0 {
        return Err(Error::NoPlan);
    }
    let value: serde_json::Value =
        serde_json::from_slice(&line).map_err(|source| Error::ParsePlan { source })?;
    let found = value.get("protocol").and_then(|p| p.as_u64()).unwrap_or(0);
    if found != u64::from(PROTOCOL_VERSION) {
        return Err(Error::ProtocolMismatch {
            found,
            expected: PROTOCOL_VERSION,
        });
    }
    serde_json::from_value(value).map_err(|source| Error::ParsePlan { source })
}

/// Holds the state directory's lock: two agents on one host would race on the same files.
fn lock(state_dir: &Path) -> Result<Flock<File>> {
    fs::create_dir_all(state_dir)
        .map_err(|source| write_err("create directory", state_dir, source))?;
    let path = state_dir.join("agent.lock");
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|source| write_err("open", &path, source))?;
    Flock::lock(file, FlockArg::LockExclusiveNonblock).map_err(|(_, errno)| match errno {
        Errno::EWOULDBLOCK => Error::Busy { path: path.clone() },
        other => write_err("lock", &path, io::Error::from(other)),
    })
}

/// Reads the blob's bytes from `input` (all of them, or those after `header.offset` when
/// the partial file already holds the rest) through its partial file into the store. A
/// stream cut part-way leaves the partial file for the engine to resume next time.
fn receive_blob(
    input: &mut impl Read,
    header: &BlobHeader,
    store: &Path,
    emit: &mut dyn FnMut(&Event) -> Result<()>,
) -> Result<PathBuf> {
    let started = Instant::now();
    let mut partial = Partial::open(store, &header.sha256, header.size)?;
    if header.offset > partial.have() {
        return Err(Error::PartialShort {
            sha256: header.sha256.clone(),
            path: partial.path().to_path_buf(),
            have: partial.have(),
            offset: header.offset,
        });
    }
    partial.truncate(header.offset)?;
    emit(&Event::BlobStarted {
        sha256: header.sha256.clone(),
        size: header.size,
        have: header.offset,
    })?;
    let mut buf = vec![0u8; 1 << 16];
    while partial.have() < header.size {
        let left = header.size - partial.have();
        let want = usize::try_from(left).map_or(buf.len(), |r| r.min(buf.len()));
        let read_err = |source| Error::ReadBlob {
            sha256: header.sha256.clone(),
            received: partial.have(),
            size: header.size,
            source,
        };
        let n = match input.read(&mut buf[..want]) {
            Ok(0) => return Err(read_err(io::ErrorKind::UnexpectedEof.into())),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(read_err(e)),
        };
        partial.write(&buf[..n])?;
    }
    let path = partial.finish(store, "stdin")?;
    emit(&Event::BlobStored {
        sha256: header.sha256.clone(),
        size: header.size,
        resumed_from: header.offset,
        retries: 0,
        seconds: started.elapsed().as_secs_f64(),
    })?;
    Ok(path)
}

/// Writes one event line and flushes it.
pub fn emit(out: &mut impl Write, event: &Event) -> Result<()> {
    let mut line = serde_json::to_vec(event).map_err(|e| Error::WriteEvent { source: e.into() })?;
    line.push(b'\n');
    out.write_all(&line)
        .and_then(|()| out.flush())
        .map_err(|source| Error::WriteEvent { source })
}

/// Messages are one line on the wire; multi-line error text is folded.
fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Runs the plan on the process's stdin and stdout.
pub fn run_stdio() -> Exit {
    let stdin = io::stdin();
    let stdout = io::stdout();
    run(&mut stdin.lock(), &mut stdout.lock(), Path::new("/"))
}
