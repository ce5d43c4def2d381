//! Getting bundle blobs onto hosts during an operation.
//!
//! Each host's plan lists only the blobs its arch and roles need, less those its store
//! already holds. With [`Distribution::Http`], the engine starts a
//! [`BlobServer`] for the operation when the first host needs a blob, listening on the
//! engine's address towards that host, and the plan gives the host a URL per blob: the
//! agent fetches it with Range resume and verifies its sha256. With [`Distribution::Ssh`],
//! and for hosts behind a bastion (which cannot reach the engine directly), the bytes
//! follow the plan on the SSH channel, resuming from the partial file a cut push left.

mod range;
mod server;
pub mod swarm;

use std::{
    io,
    net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr},
    str::FromStr,
};

use kubegrid_agent::protocol::Event;

pub use self::{
    range::{ByteRange, RangeAsk, parse_range},
    server::{BlobServer, ServerStats},
};
use crate::{
    progress::{Observer, Progress},
    session::{HostSession, LocalBlob},
};

/// How blobs reach hosts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Distribution {
    /// [`Distribution::P2p`] for a batch where at least [`swarm::AUTO_MIN_HOSTS`] hosts need
    /// blobs, [`Distribution::Http`] for fewer.
    #[default]
    Auto,
    /// Hosts fetch them from the engine's blob server over HTTP, resuming with Range.
    Http,
    /// The engine pushes them over each host's SSH connection.
    Ssh,
    /// The engine seeds them and the hosts fetch pieces from each other
    /// ([`swarm`]); whatever a swarm leaves missing goes over HTTP.
    P2p,
}

impl Distribution {
    /// The name `--distribution` takes.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Auto => "auto",
            Self::Http => "http",
            Self::Ssh => "ssh",
            Self::P2p => "p2p",
        }
    }
}

impl FromStr for Distribution {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "auto" => Ok(Self::Auto),
            "http" => Ok(Self::Http),
            "ssh" => Ok(Self::Ssh),
            "p2p" => Ok(Self::P2p),
            other => Err(format!(
                "unknown distribution {other:?}; expected auto, http, ssh or p2p"
            )),
        }
    }
}

/// One operation's distribution state: its blob server, once a host needed it. Dropping it
/// stops the server.
#[derive(Debug, Default)]
pub struct Distributor {
    server: Option<BlobServer>,
    /// The peer-to-peer seed and what it learnt, once a swarm ran.
    pub swarm: swarm::SwarmState,
}

impl Distributor {
    /// Chooses how `session` receives `blobs` with its next plan. With HTTP, the blob server
    /// (started now if this is the first host to need it) listens on the engine's address
    /// towards the host and serves the blobs the host lacks, and the session hands their
    /// URLs to the agent. Otherwise, or when that cannot be set up (a warning says why),
    /// the session pushes them over SSH.
    pub async fn route(
        &mut self,
        mode: Distribution,
        session: &mut HostSession,
        blobs: &[LocalBlob],
    ) {
        session.set_blob_source(None);
        let needed: Vec<&LocalBlob> = blobs.iter().filter(|b| session.lacks(&b.sha256)).collect();
        if mode == Distribution::Ssh || needed.is_empty() {
            return;
        }
        let target = session.connection().target();
        if target.bastion.is_some() {
            tracing::debug!(
                "{}: behind a bastion, so its blobs go over SSH",
                target.host
            );
            return;
        }
        let ip = match local_ip_towards(&target.address, target.port).await {
            Ok(ip) => ip,
            Err(e) => {
                tracing::warn!(
                    "{}: cannot tell this machine's address towards {}: {e}; pushing its blobs over SSH",
                    target.host,
                    target.address
                );
                return;
            }
        };
        let server = self.server.get_or_insert_with(BlobServer::new);
        let addr = match server.listen(ip).await {
            Ok(addr) => addr,
            Err(e) => {
                tracing::warn!(
                    "{}: the blob server cannot listen on {ip}: {e}; pushing its blobs over SSH",
                    target.host
                );
                return;
            }
        };
        for b in needed {
            server.add(b);
        }
        session.set_blob_source(Some(server.base_url(addr)));
    }

    /// The blob server, once started.
    pub fn server(&self) -> Option<&BlobServer> {
        self.server.as_ref()
    }
}

/// The address this machine sends from towards `address:port`: the source address the
/// kernel's routing picks, which is the address an SSH connection to the host (without a
/// bastion) comes from, so the host already reaches it. Nothing is sent: connecting a UDP
/// socket only looks the route up.
pub async fn local_ip_towards(address: &str, port: u16) -> io::Result<IpAddr> {
    let remote = tokio::net::lookup_host((address, port))
        .await?
        .next()
        .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "no address found"))?;
    let any = match remote {
        SocketAddr::V4(_) => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        SocketAddr::V6(_) => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
    };
    let socket = tokio::net::UdpSocket::bind(SocketAddr::new(any, 0)).await?;
    socket.connect(remote).await?;
    Ok(socket.local_addr()?.ip())
}

/// Passes an agent's blob transfer event on as [`Progress::Transfer`], and logs starts that
/// resume, retries and completions; other events are left alone.
pub fn observe(ev: &Event, host: &str, phase: &str, observer: &dyn Observer) {
    let transfer =
        |blob: &str, stage: &str, bytes, size, resumed_from, millis, message| Progress::Transfer {
            host: host.to_string(),
            phase: phase.to_string(),
            blob: blob.to_string(),
            stage: stage.to_string(),
            bytes,
            size,
            resumed_from,
            millis,
            message,
        };
    let p = match ev {
        Event::BlobStarted { sha256, size, have } => {
            if *have > 0 {
                tracing::info!(
                    "{host}: blob {} resumes at byte {have} of {size}",
                    short(sha256)
                );
            }
            transfer(sha256, "start", *have, *size, *have, 0, String::new())
        }
        Event::BlobProgress {
            sha256,
            received,
            size,
        } => transfer(sha256, "progress", *received, *size, 0, 0, String::new()),
        Event::BlobRetry {
            sha256,
            attempt,
            received,
            error,
        } => {
            tracing::info!(
                "{host}: blob {} retry {attempt} at byte {received}: {error}",
                short(sha256)
            );
            transfer(sha256, "retry", *received, 0, *received, 0, error.clone())
        }
        Event::BlobStored {
            sha256,
            size,
            resumed_from,
            retries,
            seconds,
        } => {
            tracing::info!(
                "{host}: blob {} stored: {size} bytes in {seconds:.2} s ({:.0} MiB/s), resumed from byte {resumed_from}, {retries} retries",
                short(sha256),
                *size as f64 / (1 << 20) as f64 / seconds.max(1e-6)
            );
            let millis = (seconds * 1000.0) as u64;
            transfer(
                sha256,
                "done",
                *size,
                *size,
                *resumed_from,
                millis,
                String::new(),
            )
        }
        _ => return,
    };
    observer.event(&p);
}

fn short(sha256: &str) -> &str {
    sha256.get(..12).unwrap_or(sha256)
}

#[cfg(test)]
mod tests;
