//! Benchmark: the `kubegrid operator` process at scale on the real API server.
//!
//! Each row is a number of Clusters and of kubegrid Nodes (default 50 Clusters with 100, 250,
//! 500 and 1,000 Nodes). Each run starts a fresh real apiextensions-apiserver on etcd
//! (e2e/real-apiserver), the in-memory fake for what that server does not serve (Secrets,
//! Events, Leases), and the harness's HTTPS front that serves both on one endpoint; applies
//! kubegrid's CRDs; and creates the Clusters and the Nodes (spread evenly over the Clusters,
//! one control-plane Node each, addresses 127.0.C.N: no host exists). Every Cluster names an
//! SSH key Secret that does not exist, so the operator refuses it with `SecretMissing` in
//! `Ready` before any host is contacted (operation::prepare reads the Secret before a runner
//! is built), after taking its Nodes (finalizers) and checking the bundle (a manifest only).
//! A Cluster refused so is retried with backoff; `--backoff-base` is set beyond a run, so a
//! run measures each Cluster's first reconciles, not retries. The Clusters are new: the
//! operator adds its finalizer to each (and no reconcile may fail; every run checks the
//! operator's failure counter).
//!
//! Then the release `kubegrid operator` binary starts (its own process, so its memory is its
//! own) with a kubeconfig for the front, and the run measures:
//! - the time from its start until every Cluster has a status (a watch on the real server);
//! - once settled (every Cluster has status, and neither the operator's reconcile counter nor
//!   the count of its API requests other than its Lease's moved for [`QUIET`]): its peak RSS
//!   (VmHWM) and RSS (VmRSS) from /proc, the reconciles (`kubegrid_reconciles_total` from its
//!   /metrics), the API requests the front forwarded (to the real server / to the fake;
//!   Lease renewals and reads excluded), requests per reconcile, of them the pages of Node
//!   lists (each reconcile lists its namespace's Nodes) and the reads and writes of single
//!   Nodes (the finalizer the operator puts on each, once), and the status writes to
//!   Clusters and Nodes.
//!
//! Every run checks that each Cluster was refused for the missing Secret (so no run measured
//! another path) and prints its numbers; the table shows the medians per row, and the last
//! line checks the target: peak RSS below 100 MiB with 1,000 Nodes.
//!
//! Run (needs the real API server build, see e2e/real-apiserver/build.sh; no root):
//! `cargo build --release -p kubegrid && cargo bench -p kubegrid-e2e --bench operator_scale`.
//! KUBEGRID_BENCH_RUNS sets the runs per row (default 3), KUBEGRID_BENCH_ROWS the rows, as
//! NODES or CLUSTERS:NODES separated by commas (default "100,250,500,1000", 50 Clusters each).

use std::{
    collections::BTreeSet,
    path::Path,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use futures::StreamExt;
use kube::{
    Api,
    api::{DynamicObject, PostParams},
    core::{ApiResource, GroupVersionKind},
    runtime::{WatchStreamExt, watcher},
};
use kubegrid_e2e::{kubegrid_bin, median};
use kubegrid_fake_apiserver::FakeCluster;
use kubegrid_real_apiserver::{Binaries, Front, RealApiServer, Seen};
use serde_json::{Value, json};

const DEFAULT_ROWS: &str = "100,250,500,1000";
const DEFAULT_CLUSTERS: usize = 50;
/// The target: the operator's peak RSS with [`TARGET_NODES`] Nodes.
const TARGET_MIB: f64 = 100.0;
const TARGET_NODES: usize = 1000;
const NS: &str = "fleet";
/// How long the counters must stand still for the operator to count as settled.
const QUIET: Duration = Duration::from_secs(3);
/// How often the settle check samples the counters.
const SAMPLE_EVERY: Duration = Duration::from_millis(100);
/// The longest a run may take to give every Cluster a status, or to settle.
const PATIENCE: Duration = Duration::from_secs(180);
/// Objects created at once while seeding.
const CREATE_PARALLEL: usize = 16;
/// Why every Cluster must be refused: the path this benchmark measures.
const REFUSAL: &str = "SecretMissing";

/// One row: Clusters and Nodes.
#[derive(Debug, Clone, Copy)]
struct Row {
    clusters: usize,
    nodes: usize,
}

impl Row {
    fn parse_all(text: &str) -> Vec<Row> {
        fn bad(r: &str) -> ! {
            panic!(
                "KUBEGRID_BENCH_ROWS: {r:?} is not NODES or CLUSTERS:NODES (at least one Node and at most 254 per Cluster), e.g. 1000 or 50:1000"
            )
        }
        text.split(',')
            .map(|r| {
                let r = r.trim();
                let (clusters, nodes) = match r.split_once(':') {
                    Some((c, n)) => (c.parse().unwrap_or_else(|_| bad(r)), n),
                    None => (DEFAULT_CLUSTERS, r),
                };
                let nodes = nodes.parse().unwrap_or_else(|_| bad(r));
                if clusters == 0 || nodes < clusters || nodes > clusters * 254 {
                    bad(r)
                }
                Row { clusters, nodes }
            })
            .collect()
    }
}

/// What one run measured.
#[derive(Debug, Clone)]
struct Sample {
    peak_rss_mib: f64,
    rss_mib: f64,
    all_status_s: f64,
    settled_s: f64,
    reconciles: f64,
    real: f64,
    fake: f64,
    cluster_status_writes: f64,
    node_status_writes: f64,
    /// Pages of Node lists (not watches) read.
    node_lists: f64,
    /// Reads and writes of single Nodes (the finalizer the operator puts on each).
    node_reads_writes: f64,
}

impl Sample {
    fn requests(&self) -> f64 {
        self.real + self.fake
    }
}

fn main() {
    require_release_binary();
    let runs: usize = std::env::var("KUBEGRID_BENCH_RUNS")
        .ok()
        .map(|v| {
            v.parse()
                .expect("KUBEGRID_BENCH_RUNS is a number of runs, e.g. 3")
        })
        .unwrap_or(3);
    let rows = Row::parse_all(
        &std::env::var("KUBEGRID_BENCH_ROWS").unwrap_or_else(|_| DEFAULT_ROWS.into()),
    );
    let Some(binaries) = Binaries::for_test("operator_scale") else {
        eprintln!(
            "operator_scale: no real API server build; run e2e/real-apiserver/build.sh (or .ci/setup)"
        );
        std::process::exit(2);
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    println!(
        "operator_scale: kubegrid operator ({}) on a real apiextensions-apiserver, {runs} run(s) per row",
        kubegrid_bin().display()
    );
    let mut table = Vec::new();
    for row in &rows {
        let mut samples = Vec::new();
        for run in 1..=runs {
            let sample = runtime.block_on(run_once(&binaries, *row));
            println!(
                "  {} Clusters, {} Nodes, run {run}: peak RSS {:.1} MiB (settled {:.1}), every Cluster has status after {:.2} s, settled after {:.2} s, {} reconciles, {} API requests ({} real, {} fake), {} Cluster / {} Node status writes, {} Node list pages, {} single-Node reads and writes",
                row.clusters,
                row.nodes,
                sample.peak_rss_mib,
                sample.rss_mib,
                sample.all_status_s,
                sample.settled_s,
                sample.reconciles,
                sample.requests(),
                sample.real,
                sample.fake,
                sample.cluster_status_writes,
                sample.node_status_writes,
                sample.node_lists,
                sample.node_reads_writes,
            );
            samples.push(sample);
        }
        table.push((*row, samples));
    }
    print_table(&table, runs);
}

/// The operator must be a release build, like the product's.
fn require_release_binary() {
    let bin = kubegrid_bin();
    let dir = bin.parent().expect("kubegrid binary has a folder");
    if std::env::var_os("KUBEGRID_BIN").is_none() && dir.file_name().is_none_or(|n| n != "release")
    {
        eprintln!(
            "operator_scale: {} is not a release build; run `cargo build --release -p kubegrid` and `cargo bench`",
            bin.display()
        );
        std::process::exit(2);
    }
}

fn print_table(table: &[(Row, Vec<Sample>)], runs: usize) {
    let med = |samples: &[Sample], f: fn(&Sample) -> f64| median(samples.iter().map(f).collect());
    println!("\nmedians of {runs} run(s):");
    println!(
        "| Clusters | Nodes | peak RSS MiB | RSS settled MiB | every Cluster has status s | settled s | reconciles | API requests (real + fake) | requests / reconcile | of them Node list pages | of them single-Node reads and writes | Cluster status writes | Node status writes |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for (row, samples) in table {
        println!(
            "| {} | {} | {:.1} | {:.1} | {:.2} | {:.2} | {} | {} ({} + {}) | {:.1} | {} | {} | {} | {} |",
            row.clusters,
            row.nodes,
            med(samples, |s| s.peak_rss_mib),
            med(samples, |s| s.rss_mib),
            med(samples, |s| s.all_status_s),
            med(samples, |s| s.settled_s),
            med(samples, |s| s.reconciles),
            med(samples, Sample::requests),
            med(samples, |s| s.real),
            med(samples, |s| s.fake),
            med(samples, |s| s.requests() / s.reconciles),
            med(samples, |s| s.node_lists),
            med(samples, |s| s.node_reads_writes),
            med(samples, |s| s.cluster_status_writes),
            med(samples, |s| s.node_status_writes),
        );
    }
    let at_target = table
        .iter()
        .filter(|(row, _)| row.nodes == TARGET_NODES)
        .map(|(_, samples)| med(samples, |s| s.peak_rss_mib))
        .fold(None, |worst: Option<f64>, m| {
            Some(worst.map_or(m, |w| w.max(m)))
        });
    match at_target {
        Some(mib) => println!(
            "target: operator peak RSS < {TARGET_MIB} MiB with {TARGET_NODES} Nodes: {} ({mib:.1} MiB)",
            if mib < TARGET_MIB { "met" } else { "MISSED" }
        ),
        None => println!(
            "target: operator peak RSS < {TARGET_MIB} MiB with {TARGET_NODES} Nodes: not measured (no {TARGET_NODES}-Node row)"
        ),
    }
}

fn resource(kind: &str, plural: &str) -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("kubegrid.io", "v1alpha1", kind),
        plural,
    )
}

/// Cluster `c<i>`, whose control plane is its first Node.
fn cluster(i: usize) -> Value {
    json!({
        "apiVersion": "kubegrid.io/v1alpha1", "kind": "Cluster",
        "metadata": {"name": format!("c{i:03}"), "namespace": NS},
        "spec": {
            "kubernetesVersion": "v1.31.4",
            "controlPlaneEndpoint": {"address": format!("127.0.{}.1", i + 1)},
            "network": {"podCIDR": "10.244.0.0/16", "serviceCIDR": "10.96.0.0/12"},
            "containerRuntime": {"containerd": {"version": "1.7"}},
            "bundle": {"source": "bundle", "publicKeyRef": {"name": "bundle-key"}},
            // Never created: the refusal this benchmark measures.
            "ssh": {"user": "root", "privateKeySecretRef": {"name": format!("c{i:03}-ssh")}},
        }
    })
}

/// Node `n` of the row: Cluster `n % clusters`, the `n / clusters`-th Node there.
fn node(n: usize, clusters: usize) -> Value {
    let (c, k) = (n % clusters, n / clusters);
    let role = if k == 0 { "control-plane" } else { "worker" };
    json!({
        "apiVersion": "kubegrid.io/v1alpha1", "kind": "Node",
        "metadata": {"name": format!("c{c:03}-n{k:03}"), "namespace": NS},
        "spec": {
            "clusterName": format!("c{c:03}"),
            "address": format!("127.0.{}.{}", c + 1, k + 1),
            "roles": [role],
        }
    })
}

/// A bundle manifest with everything the Clusters need (Kubernetes 1.31.4, containerd 1.7,
/// amd64). Only the manifest is written: the operator checks it against the spec before an
/// operation, and no operation starts.
fn bundle_manifest() -> String {
    let mut yaml = String::from("version: 2\nkubernetes: \"1.31.4\"\nfiles:\n");
    let entries = [
        ("archive", "containerd", "1.7.24"),
        ("binary", "runc", "1.1.12"),
        ("rootfs", "busybox", "1.36"),
        ("binary", "kubeadm", "1.31.4"),
        ("binary", "kubelet", "1.31.4"),
        ("binary", "kubectl", "1.31.4"),
        ("binary", "crictl", "1.31.1"),
        ("binary", "etcd", "3.5.15"),
        ("binary", "etcdctl", "3.5.15"),
        ("archive", "cni-plugins", "1.5.1"),
    ];
    for (i, (kind, name, version)) in entries.iter().enumerate() {
        yaml.push_str(&format!(
            "  - {{path: f{i}, sha256: {}, size: 1, arch: amd64, kind: {kind}, name: {name}, version: \"{version}\"}}\n",
            "a".repeat(64)
        ));
    }
    yaml
}

async fn create_all(api: &Api<DynamicObject>, objects: Vec<Value>) {
    futures::stream::iter(objects)
        .map(|object| async move {
            let object: DynamicObject = serde_json::from_value(object).expect("a valid object");
            api.create(&PostParams::default(), &object)
                .await
                .unwrap_or_else(|e| panic!("create {:?}: {e}", object.metadata.name))
        })
        .buffer_unordered(CREATE_PARALLEL)
        .for_each(|_| async {})
        .await;
}

/// The operator process; killed when dropped.
struct Operator {
    child: Child,
    log: std::path::PathBuf,
}

impl Operator {
    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }

    /// VmHWM (the peak) and VmRSS, in MiB.
    fn rss_mib(&self) -> (f64, f64) {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .unwrap_or_else(|e| {
                panic!("the operator is gone ({e}); its log:\n{}", self.log_tail())
            });
        let field = |name: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|rest| {
                    rest.trim()
                        .trim_end_matches("kB")
                        .trim()
                        .parse::<f64>()
                        .ok()
                })
                .unwrap_or_else(|| panic!("no {name} in /proc/<pid>/status"))
                / 1024.0
        };
        (field("VmHWM:"), field("VmRSS:"))
    }

    fn check_alive(&mut self) {
        if let Ok(Some(status)) = self.child.try_wait() {
            panic!(
                "the operator exited ({status}); its log:\n{}",
                self.log_tail()
            );
        }
    }
}

impl Drop for Operator {
    fn drop(&mut self) {
        let _killed = self.child.kill();
        let _reaped = self.child.wait();
    }
}

fn start_operator(dir: &Path, kubeconfig: &Path, metrics_port: u16) -> Operator {
    let log = dir.join("operator.log");
    let out = std::fs::File::create(&log).expect("operator log");
    let child = Command::new(kubegrid_bin())
        .arg("operator")
        .arg("--journal")
        .arg(dir.join("journal.db"))
        .arg("--work-dir")
        .arg(dir.join("work"))
        .arg("--bundle-dir")
        .arg(dir.join("bundles"))
        .args(["--listen", &format!("127.0.0.1:{metrics_port}")])
        .args(["--log-format", "json", "--identity", "bench"])
        // A refused Cluster is retried with backoff; none retries within a run.
        .args(["--backoff-base", "3600", "--backoff-cap", "3600"])
        .env("KUBECONFIG", kubeconfig)
        .env_remove("KUBERNETES_SERVICE_HOST")
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(out.try_clone().expect("operator log"))
        .stderr(out)
        .spawn()
        .expect("start kubegrid operator");
    Operator { child, log }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free loopback port")
        .port()
}

/// The operator's /metrics text; `None` while it does not answer yet.
async fn metrics(port: u16) -> Option<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .ok()?;
    tcp.write_all(b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        .await
        .ok()?;
    let mut text = String::new();
    tcp.read_to_string(&mut text).await.ok()?;
    Some(text)
}

/// `kubegrid_reconciles_total{kind="Cluster"}` from the operator's /metrics; `None` while it
/// does not answer yet.
async fn reconciles(port: u16) -> Option<f64> {
    let text = metrics(port).await?;
    Some(
        text.lines()
            .find_map(|l| l.strip_prefix("kubegrid_reconciles_total{kind=\"Cluster\"} "))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0.0),
    )
}

/// The operator's failed reconciles other than the refusals for the missing Secret
/// (category `secret`), as `/metrics` lines.
async fn other_failures(port: u16) -> Vec<String> {
    let text = metrics(port).await.unwrap_or_default();
    text.lines()
        .filter(|l| l.starts_with("kubegrid_reconcile_failures_total{"))
        .filter(|l| !l.starts_with("kubegrid_reconcile_failures_total{category=\"secret\"}"))
        .map(String::from)
        .collect()
}

/// The operator's requests other than its Lease's (renewals and the readiness probe's read,
/// which go on at a steady pace whatever the load).
fn work_requests(seen: &[Seen]) -> Vec<&Seen> {
    seen.iter()
        .filter(|s| !s.path.contains("/apis/coordination.k8s.io/"))
        .collect()
}

async fn run_once(binaries: &Binaries, row: Row) -> Sample {
    let server = RealApiServer::start(binaries.clone())
        .await
        .expect("the real API server starts");
    server
        .apply_crds(&kubegrid_api::crds())
        .await
        .expect("kubegrid's CRDs apply");
    let fake = FakeCluster::new();
    let front = Front::start(&server, &fake)
        .await
        .expect("the front starts");
    let dir = tempfile::Builder::new()
        .prefix("kubegrid-operator-scale-")
        .tempdir()
        .expect("temp dir");
    std::fs::create_dir_all(dir.path().join("bundles/bundle")).expect("bundle dir");
    std::fs::write(
        dir.path().join("bundles/bundle/manifest.yaml"),
        bundle_manifest(),
    )
    .expect("bundle manifest");
    let kubeconfig = dir.path().join("operator.kubeconfig");
    front
        .write_kubeconfig(&server, "kubegrid-operator", &kubeconfig)
        .expect("front kubeconfig");

    // Seeded straight on the real server, so the front counts the operator's requests only.
    let clusters: Api<DynamicObject> =
        Api::namespaced_with(server.client(), NS, &resource("Cluster", "clusters"));
    let nodes: Api<DynamicObject> =
        Api::namespaced_with(server.client(), NS, &resource("Node", "nodes"));
    create_all(&clusters, (0..row.clusters).map(cluster).collect()).await;
    create_all(
        &nodes,
        (0..row.nodes).map(|n| node(n, row.clusters)).collect(),
    )
    .await;

    // The watch runs before the operator starts, so no status write is missed.
    let (status_tx, mut status_rx) = tokio::sync::watch::channel(0usize);
    let watch_api = clusters.clone();
    let watching = tokio::spawn(async move {
        let mut with_status = BTreeSet::new();
        let mut events = watcher(watch_api, watcher::Config::default())
            .default_backoff()
            .boxed();
        // An error (a watch the server ended) is retried by the watcher itself.
        while let Some(event) = events.next().await {
            if let Ok(watcher::Event::Apply(o) | watcher::Event::InitApply(o)) = event
                && o.data.get("status").is_some_and(|s| !s.is_null())
            {
                with_status.insert(o.metadata.name.unwrap_or_default());
            }
            status_tx.send_replace(with_status.len());
        }
    });
    let metrics_port = free_port();
    let started = Instant::now();
    let mut operator = start_operator(dir.path(), &kubeconfig, metrics_port);

    let all_status = tokio::time::timeout(PATIENCE, status_rx.wait_for(|n| *n >= row.clusters))
        .await
        .map(|_| started.elapsed())
        .unwrap_or_else(|_| {
            panic!(
                "not every Cluster had a status {} s after the operator started; its log:\n{}",
                PATIENCE.as_secs(),
                operator.log_tail()
            )
        });
    watching.abort();

    // Settled: neither the reconciles nor the operator's requests moved for QUIET.
    let mut last = (f64::NAN, usize::MAX);
    let mut last_change = Instant::now();
    let reconciled = loop {
        operator.check_alive();
        let now = (
            reconciles(metrics_port).await.unwrap_or(f64::NAN),
            work_requests(&front.seen()).len(),
        );
        if now != last || now.0.is_nan() {
            last = now;
            last_change = Instant::now();
        } else if last_change.elapsed() >= QUIET {
            break now.0;
        }
        assert!(
            started.elapsed() < PATIENCE,
            "the operator did not settle within {} s; its log:\n{}",
            PATIENCE.as_secs(),
            operator.log_tail()
        );
        tokio::time::sleep(SAMPLE_EVERY).await;
    };
    let settled = last_change.duration_since(started);
    let (peak_rss_mib, rss_mib) = operator.rss_mib();

    // No reconcile failed for anything but the missing Secret (e.g. a finalizer conflict).
    let failures = other_failures(metrics_port).await;
    assert!(
        failures.is_empty(),
        "the operator failed reconciles: {failures:?}\noperator log:\n{}",
        operator.log_tail()
    );
    // Every Cluster was refused for its missing Secret: no host was contacted.
    let list = clusters
        .list(&Default::default())
        .await
        .expect("list Clusters");
    for c in &list.items {
        let reason = c.data["status"]["conditions"]
            .as_array()
            .and_then(|cs| cs.iter().find(|x| x["type"] == "Ready"))
            .map(|x| x["reason"].as_str().unwrap_or_default().to_string())
            .unwrap_or_default();
        assert_eq!(
            reason,
            REFUSAL,
            "Cluster {:?} was not refused for its missing SSH key Secret; its status: {}\noperator log:\n{}",
            c.metadata.name,
            c.data["status"],
            operator.log_tail()
        );
    }
    let seen = front.seen();
    let work = work_requests(&seen);
    let status_writes = |plural: &str| {
        work.iter()
            .filter(|s| {
                matches!(s.method.as_str(), "PATCH" | "PUT")
                    && s.path.contains(&format!("/{plural}/"))
                    && s.path
                        .split('?')
                        .next()
                        .is_some_and(|p| p.ends_with("/status"))
            })
            .count() as f64
    };
    let sample = Sample {
        peak_rss_mib,
        rss_mib,
        all_status_s: all_status.as_secs_f64(),
        settled_s: settled.as_secs_f64(),
        reconciles: reconciled,
        real: work.iter().filter(|s| s.real).count() as f64,
        fake: work.iter().filter(|s| !s.real).count() as f64,
        cluster_status_writes: status_writes("clusters"),
        node_status_writes: status_writes("nodes"),
        node_lists: work
            .iter()
            .filter(|s| {
                let (path, query) = s.path.split_once('?').unwrap_or((&s.path, ""));
                s.method == "GET" && path.ends_with("/nodes") && !query.contains("watch=true")
            })
            .count() as f64,
        node_reads_writes: work
            .iter()
            .filter(|s| {
                let path = s.path.split('?').next().unwrap_or_default();
                path.rsplit_once("/nodes/")
                    .is_some_and(|(_, name)| !name.is_empty() && !name.contains('/'))
            })
            .count() as f64,
    };
    drop(operator);
    drop(front);
    server.stop().await;
    sample
}
