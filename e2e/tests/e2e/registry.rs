//! The bundle registry (spec.bundle.registry) on lab hosts: `apply --until registry` starts
//! it on one host from the bundle's `registry` binary; every host gets the registry CA and
//! certs.d files; another host reaches its API over TLS with that CA (and not without it);
//! the registry hosts pull from is read-only and its push endpoint (the next port) refuses
//! anonymous pushes; an image pushed with the engine's credential (from the journal) is
//! pulled on a third host under its upstream name, through containerd's mirror config; a
//! second apply changes nothing.

use std::path::PathBuf;

use kubegrid_e2e::{Host, LabGuard, bundle_dir, describe, total_changed};
use serde_json::Value;

const PORT: u16 = 5000;
const PUSH_PORT: u16 = 5001;
const CA: &str = "/etc/kubegrid/pki/registry-ca.crt";

/// The lab's spec with the bundle (the e2e one) and its registry on `host`.
fn registry_spec(lab: &LabGuard, host: &str) -> PathBuf {
    let text = std::fs::read_to_string(lab.spec()).expect("read lab spec");
    let bundle = format!(
        "  bundle:\n    source: {}\n    registry: {{host: {host}, port: {PORT}}}\n  ssh:\n",
        bundle_dir().display()
    );
    assert_eq!(text.matches("\n  ssh:\n").count(), 1, "{text}");
    let path = lab.state_dir.join("specs-e2e-registry.yaml");
    std::fs::write(
        &path,
        text.replacen("\n  ssh:\n", &format!("\n{bundle}"), 1),
    )
    .expect("write spec");
    path
}

fn apply_until_registry(lab: &LabGuard, spec: &std::path::Path) -> Value {
    let out = lab.run(&[
        "apply",
        "-f",
        spec.to_str().expect("utf-8 path"),
        "-o",
        "json",
        "--until",
        "registry",
    ]);
    assert!(out.status.success(), "apply failed:\n{}", describe(&out));
    let report: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("stdout is not JSON ({e}):\n{}", describe(&out)));
    assert_eq!(report["outcome"], "succeeded", "{report}");
    report
}

/// The push credential the engine keeps in the lab's journal: (user, password).
fn push_credential(lab: &LabGuard) -> (String, String) {
    let text = std::fs::read_to_string(lab.spec()).expect("read lab spec");
    let cluster = serde_yaml::Deserializer::from_str(&text)
        .map(|d| <serde_yaml::Value as serde::Deserialize>::deserialize(d).expect("yaml doc"))
        .find(|d| d["kind"] == "Cluster")
        .and_then(|d| d["metadata"]["name"].as_str().map(String::from))
        .expect("the lab spec names its Cluster");
    let stored = tokio::runtime::Runtime::new()
        .expect("runtime")
        .block_on(async {
            let journal = kubegrid_journal::Journal::open(&lab.journal()).await?;
            journal.cert(&cluster, "registry-push").await
        })
        .expect("read the journal")
        .expect("the journal keeps the registry push credential");
    let user = stored
        .cert_pem
        .split(':')
        .next()
        .expect("htpasswd line")
        .to_string();
    (user, stored.key_pem)
}

/// Builds a one-layer OCI image archive at /tmp/kg-e2e-image.tar on `host` (with python3,
/// which lab hosts have) and imports it into containerd namespace `kg-e2e` as `name`.
fn import_test_image(lab: &LabGuard, host: &Host, name: &str) {
    let script = format!(
        r#"
import gzip, hashlib, io, json, os, tarfile
layer = io.BytesIO()
with tarfile.open(fileobj=layer, mode="w") as t:
    data = b"kubegrid bundle registry e2e\n"
    info = tarfile.TarInfo("hello.txt")
    info.size = len(data)
    t.addfile(info, io.BytesIO(data))
raw = layer.getvalue()
gz = gzip.compress(raw, mtime=0)
os.makedirs("/tmp/kg-e2e-oci/blobs/sha256", exist_ok=True)
def blob(b):
    d = hashlib.sha256(b).hexdigest()
    open("/tmp/kg-e2e-oci/blobs/sha256/" + d, "wb").write(b)
    return "sha256:" + d, len(b)
config = json.dumps({{"architecture": "amd64", "os": "linux", "rootfs": {{"type": "layers",
    "diff_ids": ["sha256:" + hashlib.sha256(raw).hexdigest()]}}}}).encode()
cd, cs = blob(config)
ld, ls = blob(gz)
manifest = json.dumps({{"schemaVersion": 2,
    "mediaType": "application/vnd.oci.image.manifest.v1+json",
    "config": {{"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd, "size": cs}},
    "layers": [{{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": ld, "size": ls}}]}}).encode()
md, ms = blob(manifest)
json.dump({{"schemaVersion": 2, "manifests": [{{"mediaType": "application/vnd.oci.image.manifest.v1+json",
    "digest": md, "size": ms, "annotations": {{"io.containerd.image.name": "{name}"}}}}]}},
    open("/tmp/kg-e2e-oci/index.json", "w"))
open("/tmp/kg-e2e-oci/oci-layout", "w").write('{{"imageLayoutVersion": "1.0.0"}}')
"#
    );
    lab.ssh_ok(
        host,
        &format!(
            "rm -rf /tmp/kg-e2e-oci && python3 -c '{}' && tar -C /tmp/kg-e2e-oci -cf /tmp/kg-e2e-image.tar . && ctr -n kg-e2e images import /tmp/kg-e2e-image.tar >/dev/null",
            script.replace('\'', "'\\''")
        ),
    );
}

#[test]
fn bundle_registry_serves_tls_with_the_ca_and_hosts_pull_through_it() {
    let lab = LabGuard::up(3);
    let (client, puller, registry) = (lab.host("lab-1"), lab.host("lab-2"), lab.host("lab-3"));
    let spec = registry_spec(&lab, "lab-3");
    let report = apply_until_registry(&lab, &spec);
    let phases: Vec<&str> = report["phases"]
        .as_array()
        .expect("phases")
        .iter()
        .map(|p| p["phase"].as_str().expect("phase name"))
        .collect();
    assert_eq!(phases.last(), Some(&"registry"), "{phases:?}");

    // The registry host runs the bundle's binary with its key readable by root only.
    assert_eq!(
        lab.ssh_ok(registry, "systemctl is-active kubegrid-registry.service"),
        "active"
    );
    assert_eq!(
        lab.ssh_ok(registry, "stat -c %a /etc/kubegrid/pki/registry.key"),
        "600"
    );
    assert_eq!(
        lab.ssh_ok(
            client,
            "test ! -e /usr/local/bin/kubegrid-registry && echo absent"
        ),
        "absent",
        "only the registry host runs it"
    );

    // Another host reaches /v2/ over TLS with the CA kubegrid put there, and only with it.
    let url = format!("https://{}:{PORT}/v2/", registry.address);
    assert_eq!(
        lab.ssh_ok(client, &format!("curl -sS --fail --cacert {CA} {url}")),
        "{}"
    );
    let untrusted = lab.ssh(client, &format!("curl -sS --fail {url}"));
    assert_eq!(
        untrusted.status.code(),
        Some(60),
        "{}",
        describe(&untrusted)
    );

    // Every host's docker.io mirror is the registry, under docker.io's prefix, with no
    // fallback upstream.
    let hosts_toml = lab.ssh_ok(puller, "cat /etc/containerd/certs.d/docker.io/hosts.toml");
    assert!(
        hosts_toml.contains(&format!(
            "[host.\"https://{}:{PORT}/v2/docker.io\"]",
            registry.address
        )) && hosts_toml.contains(&format!("ca = \"{CA}\""))
            && !hosts_toml.contains("server ="),
        "{hosts_toml}"
    );

    // An image pushed under its upstream name's repository is pulled on another host by
    // that upstream name: containerd goes to the bundle registry (lab hosts have no route
    // to registry.k8s.io).
    let upstream = "registry.k8s.io/kubegrid-e2e/hello:1";
    import_test_image(&lab, client, upstream);
    assert_eq!(
        lab.ssh_ok(
            registry,
            "systemctl is-active kubegrid-registry-push.service"
        ),
        "active"
    );
    assert_eq!(
        lab.ssh_ok(registry, "stat -c %a /etc/kubegrid/registry/htpasswd"),
        "600"
    );
    let push = |port: u16, user: &str| {
        let target = format!("{}:{port}/{upstream}", registry.address);
        lab.ssh(
            client,
            &format!(
                "ctr -n kg-e2e images tag --force {upstream} {target} >/dev/null && ctr -n kg-e2e images push --local {user} --tlscacert {CA} {target}"
            ),
        )
    };
    // Anonymous pushes are refused: the registry hosts pull from is read-only, and its push
    // endpoint asks for the credential.
    // Each refusal must come from the registry, not from ctr rejecting its own flags.
    let refused = |out: &std::process::Output| {
        !out.status.success() && !String::from_utf8_lossy(&out.stderr).contains("flag")
    };
    let read_only = push(PORT, "");
    assert!(refused(&read_only), "{}", describe(&read_only));
    let anonymous = push(PUSH_PORT, "");
    assert!(refused(&anonymous), "{}", describe(&anonymous));
    let wrong = push(PUSH_PORT, "--user kubegrid-push:not-the-password");
    assert!(refused(&wrong), "{}", describe(&wrong));
    let unauthorized = format!(
        "curl -sS -o /dev/null -w %{{http_code}} --cacert {CA} https://{}:{PUSH_PORT}/v2/",
        registry.address
    );
    assert_eq!(lab.ssh_ok(client, &unauthorized), "401");
    // The engine's credential pushes.
    let (user, password) = push_credential(&lab);
    let pushed = push(PUSH_PORT, &format!("--user {user}:{password}"));
    assert!(pushed.status.success(), "{}", describe(&pushed));
    let pulled = lab.ssh_ok(
        puller,
        &format!(
            "ctr -n kg-e2e images pull --hosts-dir /etc/containerd/certs.d {upstream} >/dev/null && ctr -n kg-e2e images ls -q"
        ),
    );
    assert_eq!(pulled, upstream);
    let pushed_digest = lab.ssh_ok(
        client,
        &format!("ctr -n kg-e2e images ls | awk '$1 == \"{upstream}\" {{print $3}}'"),
    );
    let pulled_digest = lab.ssh_ok(
        puller,
        &format!("ctr -n kg-e2e images ls | awk '$1 == \"{upstream}\" {{print $3}}'"),
    );
    assert!(pushed_digest.starts_with("sha256:"), "{pushed_digest}");
    assert_eq!(pulled_digest, pushed_digest);

    // The CA and server certificate come back from the journal: nothing changes.
    let again = apply_until_registry(&lab, &spec);
    assert_eq!(
        total_changed(&again),
        0,
        "second apply changed something: {again}"
    );
}
