//! Running programs with captured output.
//!
//! Children never see the agent's stdin: it carries the plan and the blobs, and a program
//! that read from it (dpkg prompting for a conffile) would eat the stream or hang.

use std::os::unix::process::CommandExt;
use std::{
    collections::BTreeMap,
    env,
    io::Read,
    path::PathBuf,
    process::{Command, ExitStatus, Stdio},
    thread,
    time::{Duration, Instant},
};

use crate::error::{Error, Result};

/// The most output a task reports: the tail, since that is where programs say why they failed.
pub const OUTPUT_TAIL_BYTES: usize = 4096;

/// Directories searched after the inherited PATH: an SSH session of a non-root user (then
/// sudo) may lack the sbin directories where modprobe, swapoff and dpkg live.
const STANDARD_PATH: [&str; 6] = [
    "/usr/local/sbin",
    "/usr/local/bin",
    "/usr/sbin",
    "/usr/bin",
    "/sbin",
    "/bin",
];

/// How often a command with a time limit is polled; only commands with a limit pay it.
const POLL: Duration = Duration::from_millis(20);

/// A finished program.
#[derive(Debug, Clone)]
pub struct Ran {
    /// The command line, for messages.
    pub command: String,
    /// Exit status; None when it was killed for running past its time limit.
    pub status: Option<ExitStatus>,
    /// Its stdout.
    pub stdout: String,
    /// Its stderr.
    pub stderr: String,
}

impl Ran {
    /// This run with every secret blanked in its command line and output, before any tail
    /// is cut: cutting first could leave the end of a secret at the start of the tail.
    pub fn redacted(self, secrets: &[String]) -> Self {
        Self {
            command: redact(&self.command, secrets),
            status: self.status,
            stdout: redact(&self.stdout, secrets),
            stderr: redact(&self.stderr, secrets),
        }
    }

    /// Exited 0.
    pub fn success(&self) -> bool {
        self.status.is_some_and(|s| s.success())
    }

    /// Stdout then stderr, cut to the last [`OUTPUT_TAIL_BYTES`].
    pub fn tail(&self) -> String {
        let mut all = self.stdout.clone();
        if !self.stderr.is_empty() {
            if !all.is_empty() && !all.ends_with('\n') {
                all.push('\n');
            }
            all.push_str(&self.stderr);
        }
        tail(&all, OUTPUT_TAIL_BYTES)
    }

    /// "exited with code 1", "was killed by signal 9", "ran past its time limit".
    pub fn status_text(&self) -> String {
        use std::os::unix::process::ExitStatusExt;
        match self.status {
            None => "ran past its time limit and was killed".into(),
            Some(s) => match (s.code(), s.signal()) {
                (Some(code), _) => format!("exited with code {code}"),
                (None, Some(sig)) => format!("was killed by signal {sig}"),
                (None, None) => format!("ended with {s}"),
            },
        }
    }

    /// This run as a [`Error::CommandFailed`], with a hint (may be empty).
    pub fn failed(&self, hint: impl Into<String>) -> Error {
        Error::CommandFailed {
            command: self.command.clone(),
            status: self.status_text(),
            output: self.tail(),
            hint: hint.into(),
        }
    }

    /// Self when it exited 0, else the failure with `hint`.
    pub fn ok_or(self, hint: impl Into<String>) -> Result<Self> {
        if self.success() {
            Ok(self)
        } else {
            Err(self.failed(hint))
        }
    }
}

/// Runs `argv` to completion with no extra environment and no time limit.
pub fn run(argv: &[&str]) -> Result<Ran> {
    let argv: Vec<String> = argv.iter().map(|s| s.to_string()).collect();
    run_with(&argv, &BTreeMap::new(), None)
}

/// Runs `argv` with extra environment, killing it after `limit` when given.
pub fn run_with(
    argv: &[String],
    extra_env: &BTreeMap<String, String>,
    limit: Option<Duration>,
) -> Result<Ran> {
    let (program, args) = argv
        .split_first()
        .ok_or(Error::EmptyArgv { what: "command" })?;
    let mut command = Command::new(program);
    command
        .args(args)
        .env("PATH", search_path())
        .envs(extra_env)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if limit.is_some() {
        // Its own process group, so a time-out kills what it started too (`sh -c` children
        // that would otherwise hold the output pipes open past the limit).
        command.process_group(0);
    }
    let mut child = command.spawn().map_err(|source| Error::Spawn {
        program: program.clone(),
        source,
    })?;
    // Both pipes are drained concurrently so a chatty program never blocks on a full pipe.
    let out = child.stdout.take().map(drain);
    let err = child.stderr.take().map(drain);
    let status = match limit {
        None => Some(child.wait()),
        Some(limit) => {
            let start = Instant::now();
            loop {
                match child.try_wait() {
                    Ok(Some(status)) => break Some(Ok(status)),
                    Ok(None) if start.elapsed() >= limit => {
                        // Killing may race with a normal exit; either way it is gone after wait.
                        if let Ok(pid) = i32::try_from(child.id()) {
                            let _ = nix::sys::signal::killpg(
                                nix::unistd::Pid::from_raw(pid),
                                nix::sys::signal::Signal::SIGKILL,
                            );
                        }
                        let _ = child.kill();
                        let _ = child.wait();
                        break None;
                    }
                    Ok(None) => thread::sleep(POLL),
                    Err(e) => break Some(Err(e)),
                }
            }
        }
    };
    let status = status.transpose().map_err(|source| Error::Spawn {
        program: program.clone(),
        source,
    })?;
    let collect =
        |h: Option<thread::JoinHandle<String>>| h.and_then(|h| h.join().ok()).unwrap_or_default();
    Ok(Ran {
        command: command_line(argv),
        status,
        stdout: collect(out),
        stderr: collect(err),
    })
}

fn drain(mut pipe: impl Read + Send + 'static) -> thread::JoinHandle<String> {
    thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = pipe.read_to_end(&mut buf);
        String::from_utf8_lossy(&buf).into_owned()
    })
}

/// The PATH children get: the inherited one plus the standard directories it lacks.
pub fn search_path() -> String {
    let inherited = env::var("PATH").unwrap_or_default();
    let mut dirs: Vec<&str> = inherited.split(':').filter(|d| !d.is_empty()).collect();
    for d in STANDARD_PATH {
        if !dirs.contains(&d) {
            dirs.push(d);
        }
    }
    dirs.join(":")
}

/// Where `program` is on [`search_path`], if anywhere.
pub fn which(program: &str) -> Option<PathBuf> {
    search_path()
        .split(':')
        .map(|d| PathBuf::from(d).join(program))
        .find(|p| p.is_file())
}

/// The last `max` bytes of `text`, starting at a character boundary.
pub fn tail(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_string();
    }
    let mut start = text.len() - max;
    while !text.is_char_boundary(start) {
        start += 1;
    }
    text[start..].to_string()
}

/// What a secret is replaced with in reported text.
pub const REDACTED: &str = "[redacted]";

/// `text` with every non-empty secret replaced by [`REDACTED`]; longer secrets go first so
/// that one containing another is blanked whole.
pub fn redact(text: &str, secrets: &[String]) -> String {
    let mut sorted: Vec<&String> = secrets.iter().filter(|s| !s.is_empty()).collect();
    sorted.sort_by_key(|s| std::cmp::Reverse(s.len()));
    sorted.into_iter().fold(text.to_string(), |acc, secret| {
        acc.replace(secret.as_str(), REDACTED)
    })
}

/// `argv` as one line, quoting words that need it, for messages.
pub fn command_line(argv: &[String]) -> String {
    argv.iter()
        .map(|a| {
            if !a.is_empty()
                && a.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_./=:,@+%".contains(c))
            {
                a.clone()
            } else {
                format!("'{}'", a.replace('\'', r"'\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn captures_output_and_status() {
        let ran = run(&["sh", "-c", "echo out; echo err >&2; exit 3"]).unwrap();
        assert!(!ran.success());
        assert_eq!(ran.status_text(), "exited with code 3");
        assert_eq!(ran.tail(), "out\nerr\n");
        let msg = ran.failed("try again").to_string();
        assert_eq!(
            msg,
            "`sh -c 'echo out; echo err >&2; exit 3'` exited with code 3; hint: try again"
        );
    }

    #[test]
    fn children_do_not_read_our_stdin() {
        let ran = run(&["sh", "-c", "cat; echo done"]).unwrap();
        assert!(ran.success());
        assert_eq!(ran.stdout, "done\n");
    }

    #[test]
    fn kills_a_command_past_its_limit() {
        let argv = vec!["sleep".to_string(), "30".to_string()];
        let start = Instant::now();
        let ran = run_with(&argv, &BTreeMap::new(), Some(Duration::from_millis(100))).unwrap();
        assert!(start.elapsed() < Duration::from_secs(10));
        assert!(!ran.success());
        assert_eq!(ran.status_text(), "ran past its time limit and was killed");
    }

    #[test]
    fn a_time_out_also_kills_what_the_command_started() {
        // The shell's child holds stdout open; without killing the group, collecting the
        // output would wait the full 30 s.
        let argv: Vec<String> = ["sh", "-c", "sleep 30 & wait"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let start = Instant::now();
        let ran = run_with(&argv, &BTreeMap::new(), Some(Duration::from_millis(100))).unwrap();
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "{:?}",
            start.elapsed()
        );
        assert!(!ran.success());
    }

    #[test]
    fn passes_extra_environment() {
        let argv = vec!["sh".to_string(), "-c".to_string(), "echo $KG_X".to_string()];
        let env = BTreeMap::from([("KG_X".to_string(), "42".to_string())]);
        assert_eq!(run_with(&argv, &env, None).unwrap().stdout, "42\n");
    }

    #[test]
    fn a_missing_program_says_so() {
        let err = run(&["kubegrid-no-such-program"]).unwrap_err().to_string();
        assert!(
            err.starts_with("failed to run `kubegrid-no-such-program`"),
            "{err}"
        );
        assert!(err.ends_with("hint: is it installed and on PATH?"), "{err}");
    }

    #[test]
    fn redacts_every_secret_longest_first() {
        let secrets = vec![
            "abcdef".to_string(),
            String::new(),
            "abcdef.0123456789abcdef".to_string(),
        ];
        assert_eq!(
            redact("token abcdef.0123456789abcdef id abcdef", &secrets),
            "token [redacted] id [redacted]"
        );
        assert_eq!(redact("nothing here", &[]), "nothing here");
    }

    #[test]
    fn tails_at_a_char_boundary() {
        assert_eq!(tail("abcdef", 3), "def");
        assert_eq!(tail("aé", 1), "");
        assert_eq!(tail("aéb", 2), "b");
        assert_eq!(tail("short", 100), "short");
    }

    #[test]
    fn search_path_adds_sbin() {
        assert!(search_path().split(':').any(|d| d == "/usr/sbin"));
        assert!(which("sh").is_some());
    }
}
