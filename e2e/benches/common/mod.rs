//! What the lab benchmarks share: SSH targets for the engine, plain ssh and scp, one TCP
//! stream's throughput, and their environment knobs.

use std::{
    io::{Read, Write},
    net::{Shutdown, TcpListener},
    path::Path,
    process::{Command, Stdio},
    time::Instant,
};

use kubegrid_agent::protocol::{PROTOCOL_VERSION, Plan};
use kubegrid_e2e::{Host, LabGuard, SSH_OPTIONS, describe, sh};
use kubegrid_engine::{
    session::{HostSession, LocalBlob},
    ssh::{HostKey, KeyPins, SshTarget},
};

/// The lab's hosts are new every run: accept and pin whatever key they show.
pub struct FirstUse;

impl KeyPins for FirstUse {
    fn pinned(&self, _host: &str) -> Option<HostKey> {
        None
    }
}

/// A numeric environment knob.
pub fn env_usize(name: &str) -> Option<usize> {
    let v = std::env::var(name).ok()?;
    Some(
        v.parse()
            .unwrap_or_else(|_| panic!("{name}={v:?} is not a number")),
    )
}

/// The engine's SSH target for a lab host, as root with the lab's key.
pub fn target(lab: &LabGuard, h: &Host) -> SshTarget {
    SshTarget {
        cluster: "bench".into(),
        host: h.name.clone(),
        address: h.address.clone(),
        port: 22,
        user: "root".into(),
        key_file: Some(lab.key.clone()),
        password: None,
        sudo: false,
        bastion: None,
    }
}

/// Copies `file` to every host, one after the other, with OpenSSH's scp.
pub fn scp_all(lab: &LabGuard, file: &Path, size: u64) -> f64 {
    let started = Instant::now();
    for h in &lab.hosts {
        let out = Command::new("scp")
            .arg("-q")
            .arg("-i")
            .arg(&lab.key)
            .args(SSH_OPTIONS)
            .arg(file)
            .arg(format!("root@{}:/var/tmp/bench-blob", h.address))
            .stdin(Stdio::null())
            .output()
            .expect("run scp");
        assert!(
            out.status.success(),
            "scp to {}:\n{}",
            h.name,
            describe(&out)
        );
    }
    let elapsed = started.elapsed().as_secs_f64();
    for h in &lab.hosts {
        let got = lab.ssh_ok(h, "stat -c %s /var/tmp/bench-blob");
        assert_eq!(got, size.to_string(), "{} got a short copy", h.name);
    }
    elapsed
}

/// Streams `size` bytes over one TCP connection from this machine's bridge address to `host`,
/// which reads it with bash's /dev/tcp into /dev/null; returns bytes per second, timed from
/// the accepted connection until the host closed it after reading everything.
pub fn stream_to_host(lab: &LabGuard, host: &Host, gateway: &str, size: u64) -> f64 {
    let listener = TcpListener::bind((gateway, 0)).expect("listen on the bridge");
    let port = listener.local_addr().expect("port").port();
    let mut reader = ssh_command(lab, host)
        .arg(format!(
            "bash -c 'cat </dev/tcp/{gateway}/{port} >/dev/null'"
        ))
        .spawn()
        .expect("start the reader");
    let (mut conn, _) = listener.accept().expect("accept the reader");
    let chunk: Vec<u8> = (0..1usize << 20).map(|i| (i * 131 % 251) as u8).collect();
    let started = Instant::now();
    let mut sent = 0u64;
    while sent < size {
        conn.write_all(&chunk).expect("stream");
        sent += chunk.len() as u64;
    }
    conn.shutdown(Shutdown::Write).expect("shutdown");
    let mut rest = Vec::new();
    conn.read_to_end(&mut rest)
        .expect("wait for the reader to close");
    let elapsed = started.elapsed().as_secs_f64();
    let status = reader.wait().expect("reader exit");
    assert!(status.success(), "the reader on {} failed", host.name);
    size as f64 / elapsed
}

/// A plain ssh command to `host` as root, stdin closed.
pub fn ssh_command(lab: &LabGuard, host: &Host) -> Command {
    lab.ssh_command_as("root", host)
}

/// Runs one empty plan per session, all at once as a playbook phase does, each needing
/// `blobs` (routed beforehand); panics naming the host on any failure.
pub async fn run_plans(sessions: Vec<HostSession>, blobs: &[LocalBlob]) {
    let mut set = tokio::task::JoinSet::new();
    for mut s in sessions {
        let blobs = blobs.to_vec();
        set.spawn(async move {
            let plan = Plan {
                protocol: PROTOCOL_VERSION,
                phase: "bench".into(),
                check_mode: false,
                store_dir: None,
                state_dir: None,
                blobs: Vec::new(),
                tasks: Vec::new(),
            };
            let host = s.connection().target().host.clone();
            let outcome = s.run_plan(plan, true, &blobs, |_| {}).await;
            s.connection().close().await;
            (host, outcome)
        });
    }
    while let Some(done) = set.join_next().await {
        let (host, outcome) = done.expect("host task");
        match outcome {
            Ok(o) if o.failure.is_none() => {}
            Ok(o) => panic!("{host}: {}", o.failure.unwrap_or_default()),
            Err(e) => panic!("{host}: {e}"),
        }
    }
}

/// A file of `size` random bytes at `dir/name`, generated once; its sha256 is kept beside it.
pub fn random_blob(dir: &str, name: &str, size: u64) -> LocalBlob {
    let dir = Path::new(dir);
    let path = dir.join(name);
    let sha_file = dir.join(format!("{name}.sha256"));
    let fresh = std::fs::metadata(&path).is_ok_and(|m| m.len() == size) && sha_file.is_file();
    if !fresh {
        std::fs::create_dir_all(dir).expect("create bench dir");
        let _ = std::fs::remove_file(&sha_file);
        sh(&format!(
            "head -c {size} /dev/urandom > {p}.tmp && mv {p}.tmp {p}",
            p = path.display()
        ));
        let sum = sh(&format!("sha256sum {} | cut -d' ' -f1", path.display()));
        std::fs::write(&sha_file, &sum).expect("write sha256");
    }
    LocalBlob {
        sha256: std::fs::read_to_string(&sha_file)
            .expect("read sha256")
            .trim()
            .to_string(),
        size,
        path,
    }
}
