//! The command line: parsing, output format, error reporting and exit codes.

mod lab;

use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use kubegrid_lab::ErrorKind;

use crate::exit;

/// kubegrid provisions GPU-ready Kubernetes clusters over SSH.
#[derive(Debug, Parser)]
#[command(name = "kubegrid", version, about)]
pub struct Cli {
    /// Output format for results on stdout; progress and errors go to stderr.
    #[arg(long, short = 'o', global = true, value_enum, default_value_t = Output::Text)]
    pub output: Output,

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
    /// Throwaway lab hosts on this machine (systemd-nspawn), to try kubegrid without hardware.
    Lab(lab::LabArgs),
}

/// Parses the arguments, runs the command and turns the outcome into an exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.verbose);
    let result = match &cli.command {
        Command::Lab(args) => lab::run(args, cli.output),
    };
    match result {
        Ok(()) => ExitCode::from(exit::OK),
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

/// Maps an error to its documented exit code by what kind of failure it is.
fn exit_code(err: &anyhow::Error) -> u8 {
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
