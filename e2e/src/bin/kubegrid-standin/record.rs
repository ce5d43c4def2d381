//! The invocation log: one JSON object per line in
//! `/var/log/kubegrid-standins/invocations.jsonl` (k4-design.md, "Paths of record").

use std::{
    fs::{self, File, OpenOptions},
    io::{self, Write},
    os::unix::fs::{OpenOptionsExt, PermissionsExt},
    path::PathBuf,
    time::{SystemTime, UNIX_EPOCH},
};

use serde::Serialize;
use serde_json::Value;

use crate::Ctx;

/// Where the log lies on a host.
pub const LOG_PATH: &str = "/var/log/kubegrid-standins/invocations.jsonl";

/// One line of the log, in the field order the design names.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Line<'a> {
    standin: &'a str,
    /// The Kubernetes version this build claims (several builds sit side by side in the e2e
    /// bundle, so a log read after an upgrade tells which one ran).
    version: &'a str,
    argv: &'a [String],
    unix_nanos: u128,
    host: &'a str,
    config: &'a Value,
    ok: bool,
    error: Option<&'a str>,
    warnings: &'a [String],
}

/// An invocation being recorded: opened before the stand-in acts, written once.
#[derive(Debug)]
pub struct Record {
    file: Option<File>,
    path: PathBuf,
    standin: &'static str,
    argv: Vec<String>,
    unix_nanos: u128,
    host: String,
    /// What the stand-in parsed from its input (kubeadm: the config documents), or null.
    pub config: Value,
    /// Things the real program would warn about, e.g. a deprecated API version.
    pub warnings: Vec<String>,
}

impl Record {
    /// Opens the log for appending, creating its directory, so a host where the stand-in
    /// cannot record fails before the stand-in changes anything. The log is root-only (0600)
    /// like the kubeadm configs it copies: it holds their bootstrap tokens and certificate
    /// keys.
    pub fn open(ctx: &Ctx, argv: &[String]) -> io::Result<Record> {
        let path = ctx.host_path(LOG_PATH);
        if let Some(dir) = path.parent() {
            fs::create_dir_all(dir)?;
        }
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(&path)?;
        // A log created by an older stand-in may be world-readable.
        file.set_permissions(fs::Permissions::from_mode(0o600))?;
        let unix_nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let host = fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_string())
            .unwrap_or_default();
        Ok(Record {
            file: Some(file),
            path,
            standin: ctx.tool.name(),
            argv: argv.to_vec(),
            unix_nanos,
            host,
            config: Value::Null,
            warnings: Vec::new(),
        })
    }

    /// Appends the line, with `ok` and `error` from `error`, in one `write` on an `O_APPEND`
    /// descriptor, so lines from concurrent invocations never interleave. Later calls do
    /// nothing: a stand-in that records early (the kubelet, before it blocks) is not recorded
    /// twice.
    pub fn finish(&mut self, error: Option<String>) -> io::Result<()> {
        let Some(mut file) = self.file.take() else {
            return Ok(());
        };
        let line = Line {
            standin: self.standin,
            version: crate::BUILD_VERSION,
            argv: &self.argv,
            unix_nanos: self.unix_nanos,
            host: &self.host,
            config: &self.config,
            ok: error.is_none(),
            error: error.as_deref(),
            warnings: &self.warnings,
        };
        let mut bytes = serde_json::to_vec(&line).map_err(io::Error::other)?;
        bytes.push(b'\n');
        let written = file.write(&bytes)?;
        if written != bytes.len() {
            return Err(io::Error::other(format!(
                "short write to {}: {written} of {} bytes",
                self.path.display(),
                bytes.len()
            )));
        }
        Ok(())
    }
}
