use std::collections::BTreeMap;

use kubegrid_agent::facts::{Cgroup, Disk, Facts, Listener, ModuleState, SwapDevice};

use super::*;

fn good(name: &str) -> Facts {
    Facts {
        hostname: name.into(),
        machine_id: format!("id-{name}"),
        os_id: "debian".into(),
        os_version: "12".into(),
        arch: "amd64".into(),
        kernel: "6.1.0".into(),
        cpus: 4,
        memory_mib: 8192,
        init: "systemd".into(),
        cgroup: Cgroup {
            version: 2,
            controllers: vec!["cpu".into(), "memory".into(), "pids".into()],
            writable: true,
        },
        disks: vec![Disk {
            path: "/var/lib".into(),
            available_bytes: 50 << 30,
            total_bytes: 100 << 30,
        }],
        modules: BTreeMap::from([
            ("overlay".into(), ModuleState::Builtin),
            ("br_netfilter".into(), ModuleState::Loaded),
        ]),
        ..Facts::default()
    }
}

fn subjects<'a>(facts: &'a [Facts], roles: &'a [String]) -> Vec<Subject<'a>> {
    facts
        .iter()
        .map(|f| Subject {
            name: &f.hostname,
            roles,
            declared_arch: None,
            facts: f,
            clock_offset_ms: 0,
            address: &f.hostname,
            kubernetes: None,
            containerd_source: kubegrid_plan::ContainerdSource::Archive,
            containerd_line: (2, 1),
            etcd_version: None,
            gpu: None,
            gpu_node: false,
            gpu_required: false,
            runtimes: &[],
        })
        .collect()
}

fn cp() -> Vec<String> {
    vec!["control-plane".into()]
}

fn only(findings: &[Finding], check: &str) -> Vec<Finding> {
    findings
        .iter()
        .filter(|f| f.check == check)
        .cloned()
        .collect()
}

#[test]
fn good_hosts_pass_every_check() {
    let facts = [good("a"), good("b")];
    let roles = cp();
    assert_eq!(run(&subjects(&facts, &roles), &[]), vec![]);
}

#[test]
fn each_failure_names_host_check_seen_and_expected() {
    let mut bad = good("b");
    bad.os_id = "arch".into();
    bad.cpus = 1;
    bad.swaps = vec![SwapDevice {
        path: "/dev/zram0".into(),
        size_kib: 1,
    }];
    bad.cgroup.writable = false;
    bad.disks[0].available_bytes = 100 << 20;
    bad.modules
        .insert("br_netfilter".into(), ModuleState::Missing);
    bad.packages.insert("docker-ce".into(), "27.0".into());
    bad.listening.push(Listener {
        address: "0.0.0.0".into(),
        port: 6443,
    });
    let facts = [good("a"), bad];
    let roles = cp();
    let f = run(&subjects(&facts, &roles), &[]);
    for check in [
        "os",
        "resources",
        "swap",
        "cgroup",
        "disk",
        "kernel-modules",
        "runtime-conflict",
        "ports",
    ] {
        let hits = only(&f, check);
        assert_eq!(hits.len(), 1, "{check}: {f:#?}");
        assert_eq!(hits[0].host, "b");
        assert!(
            !hits[0].seen.is_empty() && !hits[0].expected.is_empty() && !hits[0].hint.is_empty()
        );
    }
    assert!(only(&f, "ports")[0].seen.contains("6443"));
    assert!(only(&f, "disk")[0].seen.contains("100 MiB"));
}

#[test]
fn a_host_that_reports_no_disks_fails_the_disk_check() {
    let mut h = good("b");
    h.disks.clear();
    let facts = [good("a"), h];
    let roles = cp();
    let hits = only(&run(&subjects(&facts, &roles), &[]), "disk");
    assert_eq!(hits.len(), 1, "{hits:#?}");
    assert_eq!(hits[0].host, "b");
    assert!(
        hits[0].seen.contains("no free-space report for /var/lib"),
        "{hits:#?}"
    );
    assert!(!hits[0].hint.is_empty());
}

#[test]
fn swap_from_fstab_is_fine_because_os_prepare_turns_it_off() {
    let mut h = good("a");
    h.swaps = vec![SwapDevice {
        path: "/swapfile".into(),
        size_kib: 1,
    }];
    h.fstab_swaps = vec!["/swapfile".into()];
    let facts = [h];
    let roles = cp();
    assert!(only(&run(&subjects(&facts, &roles), &[]), "swap").is_empty());
}

#[test]
fn duplicate_machine_ids_are_named_on_both_hosts() {
    let mut b = good("b");
    b.machine_id = "id-a".into();
    let facts = [good("a"), b];
    let roles = cp();
    let f = only(&run(&subjects(&facts, &roles), &[]), "unique-identity");
    assert_eq!(f.len(), 2);
    assert!(f[0].seen.contains("also on b"), "{f:?}");
}

#[test]
fn clock_skew_and_declared_arch_are_checked() {
    let facts = [good("a")];
    let roles = cp();
    let mut s = subjects(&facts, &roles);
    s[0].clock_offset_ms = -4000;
    s[0].declared_arch = Some("arm64");
    let f = run(&s, &[]);
    assert_eq!(only(&f, "time")[0].seen, "clock -4000 ms from this machine");
    assert!(only(&f, "arch")[0].expected.contains("arm64"));
}

#[test]
fn a_skipped_check_does_not_run() {
    let mut h = good("a");
    h.cpus = 1;
    let facts = [h];
    let roles = cp();
    assert!(run(&subjects(&facts, &roles), &["resources".into()]).is_empty());
    assert!(names().contains(&"resources"));
}

fn with_vip(vip: &str) -> kubegrid_plan::KubernetesContext {
    kubegrid_plan::KubernetesContext {
        version: semver::Version::new(1, 31, 4),
        kubeadm_api: "kubeadm.k8s.io/v1beta4".into(),
        endpoint_host: vip.into(),
        endpoint_port: 6443,
        vip: Some(vip.into()),
        pod_cidr: "10.244.0.0/16".into(),
        service_cidr: "10.96.0.0/12".into(),
        dns_domain: "cluster.local".into(),
        cni: "cilium".into(),
        cni_manifest: None,
        etcd: kubegrid_plan::EtcdContext::stacked(),
        init_node: "cp1".into(),
        initialized: false,
        joins_pending: true,
        cert_validity_hours: 8760,
        ca_validity_hours: 87600,
        cert_validity_secs: 8760 * 3600,
        ca_validity_secs: 87600 * 3600,
        join: kubegrid_plan::JoinSecrets {
            token: "abcdef.0123456789abcdef".into(),
            certificate_key: "00".repeat(32),
            ca_cert_hash: "sha256:00".into(),
        },
        kube_vip_image: kubegrid_plan::KUBE_VIP_IMAGE.into(),
    }
}

#[test]
fn vip_must_be_in_the_subnet_and_free_until_the_cluster_exists() {
    use kubegrid_agent::facts::{Interface, TcpProbe};
    let mut f = good("cp1");
    f.interfaces = vec![Interface {
        name: "host0".into(),
        addresses: vec!["10.1.0.11/24".into()],
    }];
    fn vip_findings(f: &Facts, k: &kubegrid_plan::KubernetesContext) -> Vec<Finding> {
        let roles = cp();
        let subjects = vec![Subject {
            name: "cp1",
            roles: &roles,
            declared_arch: None,
            facts: f,
            clock_offset_ms: 0,
            address: "10.1.0.11",
            kubernetes: Some(k),
            containerd_source: kubegrid_plan::ContainerdSource::Archive,
            containerd_line: (2, 1),
            etcd_version: None,
            gpu: None,
            gpu_node: false,
            gpu_required: false,
            runtimes: &[],
        }];
        only(&run(&subjects, &[]), "vip")
    }
    let inside = with_vip("10.1.0.100");
    f.tcp_probes
        .insert("10.1.0.100:6443".into(), TcpProbe::Silent);
    assert!(vip_findings(&f, &inside).is_empty());

    let outside = with_vip("10.2.0.100");
    let found = vip_findings(&f, &outside);
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(found[0].seen.contains("10.1.0.0/24"), "{}", found[0].seen);

    f.tcp_probes
        .insert("10.1.0.100:6443".into(), TcpProbe::Refused);
    let found = vip_findings(&f, &inside);
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(found[0].seen.contains("answers"), "{}", found[0].seen);
    assert!(
        found[0].seen.contains("the connection was refused") && !found[0].seen.contains("Some("),
        "{}",
        found[0].seen
    );

    // After init kube-vip holds the VIP, so an answer is expected.
    f.paths.insert(kubegrid_plan::ADMIN_CONF.into(), true);
    assert!(vip_findings(&f, &inside).is_empty());
}
