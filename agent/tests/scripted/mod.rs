//! Shared by the agent's integration tests that put scripted host tools first on its PATH:
//! writing a tool into `dir/bin`, and running one task through `kubegrid-agent run`.

use std::{
    fs,
    io::Write,
    os::unix::fs::PermissionsExt,
    path::Path,
    process::{Command, Stdio},
};

use kubegrid_agent::protocol::{Action, Event, PROTOCOL_VERSION, Plan, Task, TaskStatus};

/// Writes an executable shell script `name` into `dir/bin`; `body` follows the `#!/bin/sh`
/// line.
pub fn script(dir: &Path, name: &str, body: &str) {
    let bin = dir.join("bin");
    fs::create_dir_all(&bin).unwrap();
    fs::write(bin.join(name), format!("#!/bin/sh\n{body}")).unwrap();
    fs::set_permissions(bin.join(name), fs::Permissions::from_mode(0o755)).unwrap();
}

/// Runs one task named `name` with `dir/bin` first on the agent's PATH and its store and
/// state under `dir`; returns the task's status and message.
pub fn run_task(dir: &Path, name: &str, action: Action) -> (TaskStatus, String) {
    let plan = Plan {
        protocol: PROTOCOL_VERSION,
        phase: "test".into(),
        check_mode: false,
        store_dir: Some(dir.join("store")),
        state_dir: Some(dir.join("state")),
        blobs: Vec::new(),
        tasks: vec![Task {
            name: name.into(),
            action,
            always: false,
        }],
    };
    let path = format!(
        "{}:{}",
        dir.join("bin").display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut child = Command::new(env!("CARGO_BIN_EXE_kubegrid-agent"))
        .arg("run")
        .env("PATH", path)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut input = serde_json::to_vec(&plan).unwrap();
    input.push(b'\n');
    child.stdin.take().unwrap().write_all(&input).unwrap();
    let out = child.wait_with_output().unwrap();
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .find_map(|l| match serde_json::from_str::<Event>(l).unwrap() {
            Event::TaskFinished {
                status, message, ..
            } => Some((status, message)),
            _ => None,
        })
        .expect("the task finished")
}
