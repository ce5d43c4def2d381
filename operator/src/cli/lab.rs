//! `kubegrid lab …`: thin wrappers over [`kubegrid_lab::Lab`].

use std::{path::PathBuf, time::Duration};

use clap::{Args, Subcommand};
use kubegrid_lab::{Lab, LabConfig, LinkRate, Selection, UpOptions};
use serde_json::json;

use super::{Output, emit};

/// Arguments shared by every lab command.
#[derive(Debug, Args)]
pub struct LabArgs {
    /// Where the lab keeps its state, keys, specs and host layers.
    #[arg(
        long,
        global = true,
        env = "KUBEGRID_LAB_STATE_DIR",
        default_value = "/var/lib/kubegrid/lab"
    )]
    pub state_dir: PathBuf,

    /// Where the base rootfs is built once and cached.
    #[arg(
        long,
        global = true,
        env = "KUBEGRID_LAB_CACHE_DIR",
        default_value = "/var/cache/kubegrid/lab"
    )]
    pub cache_dir: PathBuf,

    /// Debian mirror for building the base rootfs.
    #[arg(long, global = true, env = "KUBEGRID_LAB_MIRROR", default_value = kubegrid_lab::DEFAULT_MIRROR)]
    pub mirror: String,

    /// The lab command.
    #[command(subcommand)]
    pub command: LabCommand,
}

/// Lab commands.
#[derive(Debug, Subcommand)]
pub enum LabCommand {
    /// Create and boot hosts PREFIX-1..N (existing ones are kept, stopped ones started).
    Up {
        /// How many hosts the group should have.
        #[arg(long, default_value_t = 3)]
        hosts: usize,
        /// Host name prefix; also the cluster name in the written spec.
        #[arg(long = "name", value_name = "PREFIX", default_value = "lab")]
        prefix: String,
        /// Private address range for a new lab [default: 10.213.0.0/24]; an existing lab
        /// keeps its own.
        #[arg(long)]
        subnet: Option<ipnet::Ipv4Net>,
        /// Seconds to wait for every host to boot and answer on SSH.
        #[arg(long, default_value_t = 120)]
        timeout: u64,
        /// The Debian release new hosts run: bookworm (12) or bullseye (11); each release's
        /// base rootfs is built once and cached [default: bookworm]. Existing hosts keep theirs.
        #[arg(long, value_name = "RELEASE")]
        release: Option<String>,
        /// Shape every lab link to RATE each way with tc's tbf, so the network is the
        /// bottleneck: each host's upload and download, and the machine's side of the
        /// bridge. In tc's bit units: 50mbit, 1gbit, 2500kbit, or bare bit/s. Recorded for
        /// hosts added or booted later; without it, an existing lab keeps its rate.
        #[arg(long, value_name = "RATE")]
        link_rate: Option<LinkRate>,
    },
    /// Show the hosts, their state and addresses, the SSH key and the spec files.
    List,
    /// Remove hosts (or the whole lab), leaving no process, mount or link behind.
    #[command(group(clap::ArgGroup::new("which").required(true).args(["all", "names"])))]
    Down {
        /// Remove every host and the lab itself.
        #[arg(long)]
        all: bool,
        /// Hosts to remove.
        #[arg(value_name = "NAME")]
        names: Vec<String>,
    },
    /// Shut a host down cleanly; its disk and identity stay.
    Stop {
        /// The host.
        name: String,
    },
    /// Boot a stopped host and wait until it answers.
    Start {
        /// The host.
        name: String,
        /// Seconds to wait.
        #[arg(long, default_value_t = 120)]
        timeout: u64,
    },
    /// Pull the plug on a host: every process dies at once; its disk stays.
    Kill {
        /// The host.
        name: String,
    },
    /// Take a host's network link down.
    Cut {
        /// The host.
        name: String,
    },
    /// Bring a cut host's network link back up.
    Heal {
        /// The host.
        name: String,
    },
    /// Change the bandwidth limit of every link of a running lab (tc tbf), or remove it.
    ///
    /// The rate applies each way on every host's link and on the machine's side of the
    /// bridge, is recorded in the lab's state, and is put on hosts that boot or are added
    /// later.
    #[command(group(clap::ArgGroup::new("limit").required(true).args(["rate", "clear"])))]
    Shape {
        /// The new rate in tc's bit units: 50mbit, 1gbit, 2500kbit, or bare bit/s
        /// (1mbit to 100gbit).
        #[arg(long, value_name = "RATE")]
        rate: Option<LinkRate>,
        /// Remove the limit: links run at the machine's speed again.
        #[arg(long)]
        clear: bool,
    },
}

/// Runs one lab command.
pub fn run(args: &LabArgs, output: Output) -> anyhow::Result<()> {
    let lab = Lab::new(LabConfig {
        state_dir: args.state_dir.clone(),
        cache_dir: args.cache_dir.clone(),
        mirror: args.mirror.clone(),
    });
    let progress = |line: &str| eprintln!("{line}");
    match &args.command {
        LabCommand::Up {
            hosts,
            prefix,
            subnet,
            timeout,
            release,
            link_rate,
        } => {
            let started = std::time::Instant::now();
            let opts = UpOptions {
                hosts: *hosts,
                prefix: prefix.clone(),
                subnet: *subnet,
                timeout: Duration::from_secs(*timeout),
                release: release.clone(),
                link_rate: *link_rate,
            };
            let ready = lab.up(&opts, &progress)?;
            let seconds = started.elapsed().as_secs_f64();
            let listing = lab.list()?;
            emit(
                output,
                &json!({ "seconds": seconds, "ready": ready, "lab": listing }),
                || format!("{} hosts ready in {seconds:.1}s\n\n{listing}", ready.len()),
            )
        }
        LabCommand::List => {
            let listing = lab.list()?;
            emit(output, &listing, || listing.to_string())
        }
        LabCommand::Down { all, names } => {
            let which = if *all {
                Selection::All
            } else {
                Selection::Names(names.clone())
            };
            let removed = lab.down(&which, &progress)?;
            emit(output, &json!({ "removed": removed }), || {
                format!("removed {} hosts\n", removed.len())
            })
        }
        LabCommand::Stop { name } => {
            lab.halt(name, true)?;
            emit(output, &json!({ "host": name, "state": "stopped" }), || {
                format!("{name}: stopped\n")
            })
        }
        LabCommand::Kill { name } => {
            lab.halt(name, false)?;
            emit(output, &json!({ "host": name, "state": "stopped" }), || {
                format!("{name}: killed\n")
            })
        }
        LabCommand::Start { name, timeout } => {
            let ready = lab.start(name, Duration::from_secs(*timeout), &progress)?;
            emit(output, &ready, || {
                format!("{name}: {} ({:.1}s)\n", ready.system_state, ready.seconds)
            })
        }
        LabCommand::Cut { name } => {
            lab.set_cut(name, true)?;
            emit(output, &json!({ "host": name, "link": "cut" }), || {
                format!("{name}: link cut\n")
            })
        }
        LabCommand::Heal { name } => {
            lab.set_cut(name, false)?;
            emit(output, &json!({ "host": name, "link": "up" }), || {
                format!("{name}: link healed\n")
            })
        }
        LabCommand::Shape { rate, clear: _ } => {
            let shaped = lab.shape(*rate)?;
            emit(output, &shaped, || {
                let what = shaped
                    .link_rate
                    .map_or("limit removed".to_string(), |r| format!("link rate {r}"));
                let mut text = format!(
                    "{what} on bridge {} and {} hosts{}\n",
                    shaped.bridge,
                    shaped.hosts.len(),
                    list(&shaped.hosts)
                );
                if !shaped.pending.is_empty() {
                    text.push_str(&format!(
                        "not booted, so they get it when they start: {}\n",
                        shaped.pending.join(", ")
                    ));
                }
                text
            })
        }
    }
}

/// ` (a, b)` for a non-empty list of names, nothing otherwise.
fn list(names: &[String]) -> String {
    if names.is_empty() {
        String::new()
    } else {
        format!(" ({})", names.join(", "))
    }
}
