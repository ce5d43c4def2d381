//! Playbook parsing: the embedded install playbook, and errors that name the line.

use kubegrid_plan::{Batch, CheckSpec, Error, HostSelector, Mode, Module, Playbook, Role, When};

fn parse(text: &str) -> Result<Playbook, Error> {
    Playbook::parse("test", text)
}

/// One phase with the given task lines (already indented by 6 spaces).
fn one_task(task: &str) -> String {
    format!("name: t\nphases:\n  - name: p\n    hosts: all\n    tasks:\n{task}")
}

#[test]
fn install_playbook_has_the_slice_phases() {
    let playbook = Playbook::builtin("install").unwrap();
    let names: Vec<_> = playbook.phases.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "os-prepare",
            "container-runtime",
            "gpu-prepare",
            "gpu-reboot",
            "gpu-driver",
            "gpu-fabric-manager",
            "gpu-toolkit",
            "registry",
            "kubernetes-packages",
            "etcd",
            "etcd-restart",
            "control-plane-init",
            "control-plane-join",
            "worker-join",
            "cni",
            "cluster-objects",
            "verify"
        ]
    );
    let runtime = playbook.phase("container-runtime").unwrap();
    let config_v3 = runtime
        .tasks
        .iter()
        .find(|t| t.name == "containerd config (2.x)")
        .unwrap();
    assert!(matches!(&config_v3.when, Some(When::Containerd(req)) if req.to_string() == ">=2.0"));
    let Module::File(file) = &config_v3.module else {
        panic!("not a file task: {config_v3:?}")
    };
    assert_eq!(file.mode, Mode(0o644));
    assert!(matches!(
        runtime.tasks.last().unwrap().module,
        Module::Check(CheckSpec::ContainerRuns { .. })
    ));
    assert_eq!(
        playbook.phase("control-plane-join").unwrap().hosts,
        HostSelector::Joining(vec![Role::ControlPlane])
    );
    assert_eq!(
        playbook.phase("control-plane-init").unwrap().hosts,
        HostSelector::InitNode
    );
    assert_eq!(
        playbook.phase("registry").unwrap().hosts,
        HostSelector::BundleRegistry
    );
}

#[test]
fn unknown_builtin_playbook_lists_the_known_ones() {
    let err = Playbook::builtin("rollback").unwrap_err().to_string();
    assert!(
        err.contains("`rollback`") && err.contains("install") && err.contains("upgrade"),
        "{err}"
    );
}

#[test]
fn unknown_module_key_is_an_error_with_its_line() {
    let text = one_task(
        "      - name: x\n        swap_off: {}\n      - name: y\n        copy: {src: a}\n",
    );
    let err = parse(&text).unwrap_err().to_string();
    assert!(err.contains("unknown field `copy`"), "{err}");
    assert!(err.contains("line 9"), "{err}");
}

#[test]
fn unknown_key_inside_a_module_is_an_error_with_its_line() {
    let text = one_task(
        "      - name: x\n        file:\n          path: /a\n          template: crictl.yaml.tera\n          mode: \"0644\"\n          perms: x\n",
    );
    let err = parse(&text).unwrap_err().to_string();
    assert!(
        err.contains("unknown field `perms`") && err.contains("line 11"),
        "{err}"
    );
}

#[test]
fn bad_when_predicate_is_an_error_with_its_line() {
    for (when, says) in [
        ("{gpu_driver: apt}", "unknown variant `apt`"),
        ("{role: master}", "unknown variant `master`"),
        ("{containerd: \"two\"}", "containerd"),
        ("{all: [{os_family: plan9}]}", "unknown variant `plan9`"),
    ] {
        let text = one_task(&format!(
            "      - name: x\n        when: {when}\n        swap_off: {{}}\n"
        ));
        let err = parse(&text).unwrap_err().to_string();
        assert!(
            err.contains(says) && err.contains("line 7"),
            "{when}: {err}"
        );
    }
}

#[test]
fn a_task_needs_exactly_one_module() {
    let two =
        one_task("      - name: both\n        swap_off: {}\n        command: {argv: [true]}\n");
    let err = parse(&two).unwrap_err().to_string();
    assert!(
        err.contains("task `both` has 2 module keys") && err.contains("line 6"),
        "{err}"
    );
    let none = one_task("      - name: none\n        when: {role: worker}\n");
    let err = parse(&none).unwrap_err().to_string();
    assert!(err.contains("task `none` has 0 module keys"), "{err}");
}

#[test]
fn modes_are_octal_strings() {
    let text = |mode: &str| {
        one_task(&format!(
            "      - name: f\n        file: {{path: /a, template: crictl.yaml.tera, mode: {mode}}}\n"
        ))
    };
    let Module::File(f) = &parse(&text("\"0600\"")).unwrap().phases[0].tasks[0].module else {
        panic!("not a file task")
    };
    assert_eq!(f.mode, Mode(0o600));
    // Unquoted, the scalar's text is still read as octal, as chmod would.
    let Module::File(f) = &parse(&text("0755")).unwrap().phases[0].tasks[0].module else {
        panic!("not a file task")
    };
    assert_eq!(f.mode, Mode(0o755));
    assert!(
        parse(&text("\"0999\""))
            .unwrap_err()
            .to_string()
            .contains("`0999`")
    );
}

#[test]
fn rules_beyond_the_schema_name_phase_and_task() {
    let unknown_template = one_task(
        "      - name: f\n        file: {path: /a, template: nope.tera, mode: \"0644\"}\n",
    );
    let err = parse(&unknown_template).unwrap_err().to_string();
    assert!(
        err.contains("phase `p`, task `f`") && err.contains("nope.tera"),
        "{err}"
    );
    let relative = one_task(
        "      - name: f\n        file: {path: etc/a, template: crictl.yaml.tera, mode: \"0644\"}\n",
    );
    assert!(
        parse(&relative)
            .unwrap_err()
            .to_string()
            .contains("must be absolute")
    );
    let twice =
        one_task("      - name: s\n        swap_off: {}\n      - name: s\n        swap_off: {}\n");
    assert!(
        parse(&twice)
            .unwrap_err()
            .to_string()
            .contains("appears twice")
    );
}

#[test]
fn host_selectors_and_batches_parse() {
    let text = "name: t\nphases:\n  - name: workers\n    hosts: {roles: [worker, etcd]}\n    batch: \"20%\"\n    tasks: []\n  - name: cp\n    hosts: {roles: [control-plane]}\n    batch: 1\n    tasks: []\n";
    let playbook = parse(text).unwrap();
    assert_eq!(
        playbook.phases[0].hosts,
        HostSelector::Roles(vec![Role::Worker, Role::Etcd])
    );
    assert_eq!(playbook.phases[0].batch, Some(Batch::Percent(20)));
    assert_eq!(playbook.phases[1].batch, Some(Batch::Hosts(1)));
    assert_eq!(Batch::Percent(20).size(12), 2);
    assert_eq!(Batch::Percent(20).size(3), 1, "never zero hosts per batch");
    assert_eq!(Batch::Hosts(5).size(3), 3);
    for bad in ["0", "\"0%\"", "\"150%\"", "\"many\""] {
        let text = format!(
            "name: t\nphases:\n  - name: p\n    hosts: all\n    batch: {bad}\n    tasks: []\n"
        );
        assert!(parse(&text).is_err(), "batch {bad} parsed");
    }
    let bad_role = "name: t\nphases:\n  - name: p\n    hosts: {roles: [master]}\n    tasks: []\n";
    let err = parse(bad_role).unwrap_err().to_string();
    assert!(err.contains("master") && err.contains("line 4"), "{err}");
}

#[test]
fn load_reads_a_playbook_from_a_directory() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("dev.yaml"),
        one_task("      - name: s\n        swap_off: {}\n"),
    )
    .unwrap();
    let playbook = Playbook::load(dir.path(), "dev").unwrap();
    assert_eq!(playbook.phases[0].tasks[0].module, Module::SwapOff);
    let err = Playbook::load(dir.path(), "missing")
        .unwrap_err()
        .to_string();
    assert!(err.contains("missing.yaml"), "{err}");
    let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../playbooks");
    assert_eq!(
        Playbook::load(&repo, "install").unwrap(),
        Playbook::builtin("install").unwrap()
    );
}

#[test]
fn reset_playbook_parses_and_guards_every_command() {
    let reset = Playbook::builtin("reset").unwrap();
    let tasks = &reset.phase("reset").unwrap().tasks;
    assert!(!tasks.is_empty());
    for t in tasks {
        let Module::Command(c) = &t.module else {
            panic!("{} is not a command", t.name)
        };
        assert!(
            c.unless.is_some(),
            "{} would report a change every run",
            t.name
        );
    }
}
