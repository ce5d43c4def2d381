//! The `kubegrid-agent` binary.

use std::{path::Path, process::ExitCode};

use kubegrid_agent::{facts, fanout, protocol, run};

const USAGE: &str = "usage: kubegrid-agent <run|fanout|facts|version>
  run      read a plan (one JSON line, then its blobs) on stdin; stream JSON events on stdout
  fanout   read a distribution job (one JSON line) on stdin; fetch its blobs from the swarm,
           serving peers until stdin ends
  facts    print this host's facts as JSON
  version  print the agent version";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["run"] => ExitCode::from(run::run_stdio().code()),
        ["fanout"] => ExitCode::from(fanout::run_stdio()),
        ["facts"] => {
            let facts = facts::gather(
                Path::new("/"),
                &protocol::FactsArgs::default(),
                Path::new(protocol::DEFAULT_STORE_DIR),
            );
            match serde_json::to_string(&facts) {
                Ok(json) => {
                    println!("{json}");
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("error: failed to encode facts: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        ["version"] | ["--version"] => {
            println!("kubegrid-agent {}", env!("CARGO_PKG_VERSION"));
            ExitCode::SUCCESS
        }
        _ => {
            eprintln!("{USAGE}");
            ExitCode::from(2)
        }
    }
}
