//! **TEST STAND-IN for vLLM's OpenAI-compatible server.** There is no GPU and no vLLM on the
//! test machines, so the serving tests run this in its place. It is invoked like
//! `vllm serve MODEL --served-model-name NAME --host H --port P [flags]`, and:
//! - "loads the weights": reads every file of MODEL from the node model cache's directory
//!   and checks its sha256 against the cache's record, refusing to start on a mismatch
//!   ([`load`]); like vLLM, it listens only once loaded, so a startup probe fails until then;
//! - serves `/health`, `/v1/models`, `/v1/completions` (simulated generation: a fixed time
//!   per token, at most `--max-num-seqs` requests running, the rest waiting) and `/metrics`
//!   with vLLM's metric names and `model_name` label ([`server`]);
//! - exits at SIGTERM at once, failing the requests it holds, as vLLM does: the reason the
//!   serving pods drain before it.
//!
//! Never used by the product.

pub mod load;
pub mod server;

use std::{
    net::{IpAddr, Ipv4Addr, SocketAddr},
    path::PathBuf,
    time::Duration,
};

pub use load::{Loaded, load};
pub use server::Serving;

/// The command line, parsed.
#[derive(Debug, Clone)]
pub struct Options {
    /// The model directory.
    pub model: PathBuf,
    /// What to serve, and how fast.
    pub serving: Serving,
    /// Where to listen.
    pub listen: SocketAddr,
}

impl Options {
    /// Parses `serve MODEL [--served-model-name N] [--host H] [--port P] [--max-num-seqs N]
    /// [--standin-token-delay-ms MS] [other vLLM flags]`. Other flags are accepted and
    /// ignored, with the word after them taken as their value unless it is a flag itself.
    pub fn parse(args: &[String]) -> Result<Self, String> {
        let mut words = args.iter().map(String::as_str).peekable();
        if words.next() != Some("serve") {
            return Err("usage: kubegrid-vllm-standin serve MODEL [flags]".into());
        }
        let model = words.next().ok_or("serve: MODEL is missing")?;
        let mut served_name = model.to_string();
        let mut host = IpAddr::V4(Ipv4Addr::LOCALHOST);
        let mut port = 8000;
        let mut max_running = 256;
        let mut token_delay = Duration::from_millis(10);
        while let Some(word) = words.next() {
            let (flag, inline) = match word.split_once('=') {
                Some((f, v)) => (f, Some(v)),
                None => (word, None),
            };
            let value = match inline {
                Some(v) => Some(v),
                None if words.peek().is_some_and(|w| !w.starts_with("--")) => words.next(),
                None => None,
            };
            let need = || value.ok_or_else(|| format!("{flag} needs a value"));
            let bad = |e: &dyn std::fmt::Display| format!("{flag}: {e}");
            match flag {
                "--served-model-name" => served_name = need()?.to_string(),
                "--host" => host = need()?.parse().map_err(|e| bad(&e))?,
                "--port" => port = need()?.parse().map_err(|e| bad(&e))?,
                "--max-num-seqs" => max_running = need()?.parse().map_err(|e| bad(&e))?,
                "--standin-token-delay-ms" => {
                    token_delay = Duration::from_millis(need()?.parse().map_err(|e| bad(&e))?);
                }
                _ => {}
            }
        }
        Ok(Self {
            model: PathBuf::from(model),
            serving: Serving {
                model: model.to_string(),
                served_name,
                token_delay,
                max_running,
            },
            listen: SocketAddr::new(host, port),
        })
    }
}
