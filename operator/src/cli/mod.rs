//! The command line: parsing, output format, error reporting and exit codes.

mod apply;
mod bundle;
mod bundle_agents;
mod certs;
mod certs_text;
mod crd;
mod image;
mod journal;
mod lab;
mod membership;
mod model_cache;
mod operator;
mod packed;
mod progress;
mod reset;
mod serving;
mod serving_manifests;
mod serving_router;
mod spec_bundle;
mod upgrade;
mod version;

use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use kubegrid_engine::operation::Mode;
use kubegrid_lab::ErrorKind;

use crate::exit;

/// kubegrid provisions GPU-ready Kubernetes clusters over SSH.
#[derive(Debug, Parser)]
#[command(name = "kubegrid", version, about)]
pub struct Cli {
    /// Output format for results on stdout; progress and errors go to stderr.
    #[arg(long, short = 'o', global = true, value_enum, default_value_t = Output::Text)]
    pub output: Output,

    /// How apply, plan, upgrade, reset and certs show progress on stderr: `auto` (a live view
    /// on a terminal unless `-o json`, timestamped lines otherwise), `lines`, or `json` (one
    /// JSON object per event and line, with `elapsedSeconds`, for scripts).
    #[arg(long, global = true, value_enum, value_name = "HOW", default_value_t = progress::Display::Auto)]
    pub progress: progress::Display,

    /// Log more (repeat for even more); RUST_LOG overrides.
    #[arg(long, short = 'v', global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,

    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Result formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Output {
    /// Human-readable text.
    Text,
    /// One JSON document, for scripts.
    Json,
}

/// Top-level commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Bring hosts to the spec: preflight, OS preparation, container runtime, checks.
    Apply(apply::ApplyArgs),
    /// Show what `apply` would change on each host, changing nothing.
    Plan(apply::ApplyArgs),
    /// List past operations from the journal.
    History(journal::HistoryArgs),
    /// Show one operation's per-host task events.
    Logs(journal::LogsArgs),
    /// Pinned SSH host keys: show one, or deliberately accept a changed one.
    HostKey(journal::HostKeyArgs),
    /// Throwaway lab hosts on this machine (systemd-nspawn), to try kubegrid without hardware.
    Lab(lab::LabArgs),
    /// Offline bundles: signing keys, signatures, inspection and comparison.
    Bundle(bundle::BundleArgs),
    /// Print the operator's CRDs (Cluster, Node), or write them where the Helm chart keeps them.
    Crd(crd::CrdArgs),
    /// The operator's container image: build it into an OCI image layout, without Docker.
    Image(image::ImageArgs),
    /// Run the operator: reconcile Cluster and Node resources in the cluster it runs in.
    Operator(operator::OperatorArgs),
    /// Run the node model cache: cache the given models on this node, one coordinator per
    /// model downloading from the hub, the other nodes copying in-cluster (docs/serving.md).
    ModelCache(model_cache::ModelCacheArgs),
    /// Run the LLMService controller (docs/serving.md): vLLM workloads, drain on scale-down,
    /// disruption budgets, KEDA ScaledObjects and status, one acting replica per Lease.
    ServingController(serving::ServingArgs),
    /// Print the serving layer's manifests to apply into a cluster: the LLMService and
    /// ModelPrewarm CRDs, the controller, the node model cache on GPU nodes, their RBAC and
    /// the cache's token, the image pinned by digest (docs/serving.md).
    ServingManifests(serving_manifests::ManifestsArgs),
    /// Run the router in front of an LLMService that scales to zero: it holds requests while
    /// no replica runs and exports the demand KEDA wakes the service on (docs/serving.md).
    ServingRouter(serving_router::RouterArgs),
    /// Reset every host of a spec (kubeadm reset, kubegrid's etcd and registry), after
    /// confirmation: type the cluster's name, or pass --yes.
    Reset(reset::ResetArgs),
    /// Certificates: `certs check` lists every certificate on every Node against what
    /// kubegrid issued, `certs renew` re-signs them, `certs rotate-ca` replaces a CA with the
    /// cluster up (docs/certificates.md).
    Certs(certs::CertsArgs),
    /// Upgrade an installed cluster to the spec's versions, node by node: `upgrade plan`
    /// shows the steps and blockers, `upgrade apply` runs them (docs/upgrades.md).
    Upgrade(upgrade::UpgradeArgs),
    /// Print kubegrid's version, the agent it pushes and the bundle formats it reads.
    Version(version::VersionArgs),
}

/// Bad input found by the CLI itself (exit code 2).
#[derive(Debug)]
pub struct UsageError(pub String);

impl std::fmt::Display for UsageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UsageError {}

/// Parses the arguments, runs the command and turns the outcome into an exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    progress::choose(cli.progress);
    match &cli.command {
        Command::Operator(args) => init_operator_logging(args.log_format),
        Command::ServingController(args) => init_operator_logging(args.log_format),
        Command::ModelCache(args) => init_operator_logging(args.log_format),
        Command::ServingRouter(args) => init_operator_logging(args.log_format),
        _ => init_logging(cli.verbose),
    }
    let result = match &cli.command {
        Command::Lab(args) => lab::run(args, cli.output).map(|()| exit::OK),
        Command::Bundle(args) => bundle::run(args, cli.output),
        Command::Crd(args) => crd::run(args, cli.output).map(|()| exit::OK),
        Command::ServingManifests(args) => {
            serving_manifests::run(args, cli.output).map(|()| exit::OK)
        }
        Command::Image(args) => image::run(args, cli.output).map(|()| exit::OK),
        Command::Operator(args) => block_on(operator::run(args)),
        Command::ServingController(args) => block_on(serving::run(args)),
        Command::ModelCache(args) => block_on(model_cache::run(args)),
        Command::ServingRouter(args) => block_on(serving_router::run(args)),
        Command::Apply(a) => block_on(apply::run(a, Mode::Apply, cli.output)),
        Command::Plan(a) => block_on(apply::run(a, Mode::Plan, cli.output)),
        Command::Reset(a) => block_on(reset::run(a, cli.output)),
        Command::Upgrade(a) => block_on(upgrade::run(a, cli.output)),
        Command::Certs(a) => block_on(certs::run(a, cli.output)),
        Command::Version(a) => version::run(a, cli.output).map(|()| exit::OK),
        Command::History(a) => {
            block_on(async { journal::history(a, cli.output).await.map(|()| exit::OK) })
        }
        Command::Logs(a) => {
            block_on(async { journal::logs(a, cli.output).await.map(|()| exit::OK) })
        }
        Command::HostKey(a) => {
            block_on(async { journal::host_key(a, cli.output).await.map(|()| exit::OK) })
        }
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(err) => {
            let code = exit_code(&err);
            report(&err, cli.output, code);
            ExitCode::from(code)
        }
    }
}

fn init_logging(verbose: u8) {
    let default = match verbose {
        0 => "warn",
        1 => "info",
        _ => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .init();
}

/// The operator logs at info by default; JSON lines carry the current span's fields
/// (cluster, operation kind) so log pipelines can filter by cluster.
fn init_operator_logging(format: operator::LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Colour codes only for a terminal: a pod's log or a pipe gets plain text.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    match format {
        operator::LogFormat::Json => builder
            .json()
            .with_current_span(true)
            .with_span_list(true)
            .flatten_event(true)
            .init(),
        operator::LogFormat::Text => builder.with_target(false).init(),
    }
}

fn block_on(work: impl Future<Output = anyhow::Result<u8>>) -> anyhow::Result<u8> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(work)
}

/// Maps an error to its documented exit code by what kind of failure it is.
fn exit_code(err: &anyhow::Error) -> u8 {
    if let Some(r) = err.downcast_ref::<packed::Relabeled>() {
        return r.code;
    }
    // Bad input of any kind (flags, spec, bundle, keys) is caught before hosts are touched.
    if err.downcast_ref::<UsageError>().is_some()
        || err.downcast_ref::<kubegrid_api::Error>().is_some()
        || err.downcast_ref::<kubegrid_plan::Error>().is_some()
        || err
            .downcast_ref::<kubegrid_bundle::Error>()
            .is_some_and(kubegrid_bundle::Error::is_input)
        || err
            .downcast_ref::<kubegrid_engine::Error>()
            .is_some_and(kubegrid_engine::Error::is_input)
    {
        return exit::USAGE;
    }
    match err
        .downcast_ref::<kubegrid_lab::Error>()
        .map(kubegrid_lab::Error::kind)
    {
        Some(ErrorKind::Usage) => exit::USAGE,
        Some(ErrorKind::Environment) => exit::ENVIRONMENT,
        Some(ErrorKind::Timeout) => exit::TIMEOUT,
        Some(ErrorKind::Failed) | None => exit::FAILED,
    }
}

/// Prints the whole cause chain to stderr, and in JSON mode an error object to stdout.
fn report(err: &anyhow::Error, output: Output, code: u8) {
    let chain: Vec<String> = err.chain().map(ToString::to_string).collect();
    eprintln!("error: {}", chain[0]);
    for cause in &chain[1..] {
        eprintln!("  caused by: {cause}");
    }
    if output == Output::Json {
        let doc = serde_json::json!({ "error": { "message": chain[0], "causes": &chain[1..], "exitCode": code } });
        println!("{doc}");
    }
}

/// Prints a result: its JSON form, or its text form.
fn emit<T: serde::Serialize>(
    output: Output,
    value: &T,
    text: impl FnOnce() -> String,
) -> anyhow::Result<()> {
    match output {
        Output::Json => println!("{}", serde_json::to_string_pretty(value)?),
        Output::Text => print!("{}", text()),
    }
    Ok(())
}
