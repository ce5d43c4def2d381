//! The `kubegrid` command line as a user meets it: help, exit codes, JSON output.
//! Commands that boot hosts are covered by the e2e tests.

use std::process::Command;

fn kubegrid(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_kubegrid"))
        .args(args)
        .output()
        .expect("run kubegrid")
}

#[test]
fn help_lists_the_lab_commands() {
    let out = kubegrid(&["lab", "--help"]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    for cmd in ["up", "list", "down", "stop", "start", "kill", "cut", "heal"] {
        assert!(
            text.contains(&format!("  {cmd} ")),
            "`{cmd}` missing from help:\n{text}"
        );
    }
}

#[test]
fn list_of_an_empty_state_dir_is_json_and_creates_nothing() {
    let dir = std::env::temp_dir().join(format!("kubegrid-cli-test-{}", std::process::id()));
    let out = kubegrid(&[
        "lab",
        "--state-dir",
        dir.to_str().unwrap(),
        "list",
        "--output",
        "json",
    ]);
    assert!(out.status.success(), "{out:?}");
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON on stdout");
    assert_eq!(doc["exists"], false);
    assert_eq!(doc["hosts"].as_array().map(Vec::len), Some(0));
    assert!(!dir.exists(), "list must not create the state directory");
}

#[test]
fn usage_errors_exit_2() {
    assert_eq!(kubegrid(&["lab", "down"]).status.code(), Some(2));
    assert_eq!(
        kubegrid(&["lab", "up", "--subnet", "not-a-cidr"])
            .status
            .code(),
        Some(2)
    );
    assert_eq!(kubegrid(&["no-such-command"]).status.code(), Some(2));
}
