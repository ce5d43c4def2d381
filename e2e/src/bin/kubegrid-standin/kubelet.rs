//! The STAND-IN kubelet: checks the files it is pointed at, answers its health endpoint so
//! `kubeadm init`/`join` see it start, serves its HTTPS port with its serving certificate
//! (see `serve`), serves a STAND-IN kube-apiserver while the apiserver's static pod manifest
//! exists (see `apiserver`), and runs until SIGTERM so systemd reports it active.

mod apiserver;
mod serve;

use std::{
    io::{Read, Write},
    net::{Ipv4Addr, TcpListener},
    path::Path,
    thread,
};

use nix::sys::signal::{SigSet, Signal};

use crate::{Ctx, Error, io_error, record::Record, yaml};

/// The kubelet's healthz port (`healthzPort`, 10248), on 127.0.0.1 as the real one.
pub const HEALTHZ_PORT: u16 = 10248;

/// The value of `--name=value` or `--name value` in `args`.
fn flag<'a>(args: &'a [String], name: &str) -> Option<&'a str> {
    let long = format!("--{name}");
    let mut it = args.iter();
    while let Some(a) = it.next() {
        if let Some(v) = a.strip_prefix(&long).and_then(|r| r.strip_prefix('=')) {
            return Some(v);
        }
        if *a == long {
            return it.next().map(String::as_str);
        }
    }
    None
}

/// What `kubelet --version` prints: `Kubernetes vX.Y.Z` as upstream's, then the stand-in's
/// disclaimer, so scripts that take the second word read the version.
pub fn version_line(ctx: &Ctx) -> String {
    format!("Kubernetes {} ({})", ctx.version, ctx.tool.disclaimer())
}

/// Runs the kubelet stand-in; returns after SIGTERM or SIGINT.
pub fn run(ctx: &Ctx, args: &[String], rec: &mut Record) -> Result<(), Error> {
    if args
        .iter()
        .any(|a| a == "--version" || a == "--version=true")
    {
        println!("{}", version_line(ctx));
        return Ok(());
    }
    // Before kubeadm writes /var/lib/kubelet/config.yaml the real kubelet exits and systemd
    // restarts it; the stand-in does the same.
    if let Some(config) = flag(args, "config")
        && !Path::new(config).exists()
    {
        return Err(Error::Invalid(format!(
            "failed to load kubelet config file, path: {config}: no such file or directory \
             (as the real kubelet before kubeadm init/join writes it; systemd restarts it)"
        )));
    }
    let mut kubelet_config = serde_json::Value::Null;
    for name in ["config", "kubeconfig", "bootstrap-kubeconfig"] {
        let Some(path) = flag(args, name).map(Path::new).filter(|p| p.exists()) else {
            continue;
        };
        let text = std::fs::read_to_string(path).map_err(io_error("read", path))?;
        let docs = yaml::parse_docs(&text).map_err(|e| {
            Error::Invalid(format!(
                "--{name} {} is not valid YAML: {e}",
                path.display()
            ))
        })?;
        if name == "config" {
            kubelet_config = docs.into_iter().next().unwrap_or_default();
        }
    }
    let serving = serve::Serving::from_config(&kubelet_config);
    serve::ensure_certificate(
        ctx,
        &serving,
        &serve::hostname(flag(args, "hostname-override")),
    )?;
    // Block the stop signals before the health thread starts, so it inherits the mask and
    // only this thread's sigwait receives them.
    let mut stop = SigSet::empty();
    stop.add(Signal::SIGTERM);
    stop.add(Signal::SIGINT);
    stop.thread_block()
        .map_err(|e| Error::Invalid(format!("cannot block SIGTERM: {e}")))?;
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, HEALTHZ_PORT)).map_err(|e| {
        Error::Invalid(format!(
            "cannot listen on 127.0.0.1:{HEALTHZ_PORT} for healthz: {e} (another kubelet running?)"
        ))
    })?;
    thread::spawn(move || serve_healthz(&listener));
    let https = serve::spawn(ctx, &serving)?;
    ctx.say(&format!("serving HTTPS on {https} with {}", serving.cert));
    // Runs until the process ends.
    let apiserver = apiserver::ApiServer::spawn(&ctx.root);
    ctx.say(&format!(
        "kubelet {} running: it runs no pods (but serves a STAND-IN kube-apiserver while {} exists) and talks to no apiserver; stops on SIGTERM",
        ctx.version,
        apiserver::MANIFEST
    ));
    rec.finish(None)
        .map_err(|e| Error::Invalid(format!("cannot record this invocation: {e}")))?;
    let signal = stop
        .wait()
        .map_err(|e| Error::Invalid(format!("waiting for SIGTERM failed: {e}")))?;
    ctx.say(&format!(
        "stopping on {signal}{}",
        apiserver.listening().map_or_else(String::new, |a| format!(
            "; the STAND-IN kube-apiserver stops listening on {a}"
        ))
    ));
    Ok(())
}

fn serve_healthz(listener: &TcpListener) {
    for mut conn in listener.incoming().flatten() {
        let mut buf = [0u8; 512];
        let n = conn.read(&mut buf).unwrap_or(0);
        let reply: &[u8] = if buf[..n].starts_with(b"GET /healthz ") {
            b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nok"
        } else {
            b"HTTP/1.0 404 Not Found\r\nContent-Length: 0\r\n\r\n"
        };
        let _ = conn.write_all(reply);
    }
}
