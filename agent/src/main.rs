//! The `kubegrid-agent` binary.

use std::{path::Path, process::ExitCode};

const USAGE: &str = "usage: kubegrid-agent <facts|version>\n  facts    print this host's facts as JSON\n  version  print the agent version";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["facts"] => match serde_json::to_string(&kubegrid_agent::facts::gather(Path::new("/"))) {
            Ok(json) => {
                println!("{json}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("error: failed to encode facts: {e}");
                ExitCode::FAILURE
            }
        },
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
