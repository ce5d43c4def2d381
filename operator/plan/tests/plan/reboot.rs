//! `reboot:` phases: parsing, the rules beyond the schema, and what `compile` makes of them.

use std::time::Duration;

use kubegrid_plan::{Bundle, DEFAULT_REBOOT_TIMEOUT, Playbook, compile};

use crate::common::{host, runc_cluster, write_bundle};

const PLAYBOOK: &str = "name: t
phases:
  - name: before
    hosts: all
    tasks:
      - name: swap
        swap_off: {}
  - name: restart
    hosts: {roles: [worker]}
    reboot: {when: {arch: arm64}, timeout_seconds: 90}
  - name: always
    hosts: all
    reboot: {}
";

#[test]
fn a_reboot_phase_compiles_to_no_tasks_and_a_reboot_where_its_predicate_holds() {
    let dir = tempfile::tempdir().unwrap();
    write_bundle(dir.path());
    let bundle = Bundle::open(dir.path()).unwrap();
    let playbook = Playbook::parse("test", PLAYBOOK).unwrap();
    let cluster = runc_cluster("1.7");

    let arm_worker = compile(&playbook, &cluster, &host("arm64", &["worker"]), &bundle).unwrap();
    let names: Vec<_> = arm_worker.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["before", "restart", "always"]);
    assert_eq!(arm_worker[0].reboot, None, "a task phase reboots nothing");
    assert!(arm_worker[1].tasks.is_empty());
    assert_eq!(
        arm_worker[1].reboot.map(|r| r.timeout),
        Some(Duration::from_secs(90))
    );
    assert_eq!(
        arm_worker[2].reboot.map(|r| r.timeout),
        Some(DEFAULT_REBOOT_TIMEOUT)
    );

    // The predicate fails on amd64: the phase still selects the host (so a pending reboot
    // can be recorded), but compiles to no reboot.
    let amd_worker = compile(&playbook, &cluster, &host("amd64", &["worker"]), &bundle).unwrap();
    assert_eq!(amd_worker[1].name, "restart");
    assert_eq!(amd_worker[1].reboot, None);

    // The host selector applies as for any phase.
    let cp = compile(
        &playbook,
        &cluster,
        &host("arm64", &["control-plane"]),
        &bundle,
    )
    .unwrap();
    let names: Vec<_> = cp.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["before", "always"]);
}

#[test]
fn a_reboot_phase_with_tasks_a_zero_timeout_or_an_unknown_key_is_refused() {
    let with_tasks = "name: t
phases:
  - name: gpu-reboot
    hosts: all
    reboot: {}
    tasks:
      - name: swap
        swap_off: {}
";
    let err = Playbook::parse("test", with_tasks).unwrap_err().to_string();
    assert!(
        err.contains("phase `gpu-reboot` has both `reboot` and `tasks`"),
        "{err}"
    );

    let zero = "name: t\nphases:\n  - name: r\n    hosts: all\n    reboot: {timeout_seconds: 0}\n";
    let err = Playbook::parse("test", zero).unwrap_err().to_string();
    assert!(
        err.contains("phase `r`") && err.contains("timeout_seconds"),
        "{err}"
    );

    let unknown = "name: t\nphases:\n  - name: r\n    hosts: all\n    reboot: {after: 5}\n";
    let err = Playbook::parse("test", unknown).unwrap_err().to_string();
    assert!(err.contains("after"), "{err}");
}
