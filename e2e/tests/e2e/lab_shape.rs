//! `kubegrid lab up --link-rate` and `lab shape`: a tbf qdisc on every lab link, checked
//! with tc and measured with real transfers; `lab shape --clear` takes it all off again.
//!
//! Rates are timed by the receiver, from its first byte to the sender's EOF, so connection
//! setup does not count. Bounds are generous on purpose: the upper one (1.15x the limit)
//! is what proves the shaping, since an unshaped veth moves several Gbit/s here, and it
//! leaves room for tbf's 64 KiB bucket and timer granularity; the lower one (0.3x) only
//! catches a link that stalls or drops (a bucket or queue too small), because on a shared
//! 2-core CI machine a busy neighbour can slow a 50 Mbit/s TCP stream well below the limit.

use std::{
    io::{Read, Write},
    net::{TcpListener, TcpStream},
    process::Command,
    thread,
    time::{Duration, Instant},
};

use kubegrid_e2e::{Host, LabGuard, describe};
use serde_json::Value;

/// The limit under test, as given and in bytes per second (tc's JSON unit).
const RATE: &str = "50mbit";
const RATE_BITS: f64 = 50e6;
const RATE_BYTES: u64 = 6_250_000;
/// What each transfer moves: 2.7 s at the limit.
const BYTES: u64 = 16 << 20;
const PORT: u16 = 5201;

/// A lab device's name: the machine's own namespace, or a host's.
struct Dev {
    netns: Option<String>,
    name: String,
}

impl Dev {
    fn machine(name: String) -> Dev {
        Dev { netns: None, name }
    }

    /// `tc -s -j qdisc show dev NAME root|ingress`, as JSON (an empty list when the device
    /// has no such qdisc, `null` when the device is gone).
    fn qdisc(&self, which: &str) -> Value {
        let mut cmd = Command::new("tc");
        if let Some(ns) = &self.netns {
            cmd.args(["-n", ns]);
        }
        let out = cmd
            .args(["-s", "-j", "qdisc", "show", "dev", &self.name, which])
            .output()
            .expect("run tc");
        if !out.status.success() {
            return Value::Null;
        }
        serde_json::from_slice(&out.stdout).unwrap_or(Value::Array(Vec::new()))
    }

    /// Bytes its root tbf has sent; panics unless the root qdisc is tbf at [`RATE`].
    fn tbf_bytes(&self) -> u64 {
        let q = &self.qdisc("root")[0];
        assert_eq!(q["kind"], "tbf", "{}: root qdisc {q}", self.name);
        assert_eq!(q["options"]["rate"], RATE_BYTES, "{}: {q}", self.name);
        q["bytes"].as_u64().expect("bytes sent")
    }

    fn has_tbf(&self) -> bool {
        self.qdisc("root")[0]["kind"] == "tbf"
    }
}

/// The devices the lab shapes, named as the lab names them (see operator/lab/src/state.rs).
struct Links {
    id: String,
    bridge: Dev,
    ifb: Dev,
}

impl Links {
    fn of(lab: &LabGuard) -> Links {
        let bridge = lab.list()["bridge"].as_str().expect("bridge").to_string();
        let id = bridge.strip_prefix("kgb-").expect("kgb-<id>").to_string();
        Links {
            ifb: Dev::machine(format!("kgi-{id}")),
            bridge: Dev::machine(bridge),
            id,
        }
    }

    /// The machine-side veth of `h` (egress: the host's download).
    fn veth(&self, h: &Host) -> Dev {
        let octet = h.address.rsplit('.').next().expect("address");
        Dev::machine(format!("kg{}-{octet}", self.id))
    }

    /// `eth0` in the namespace of `h` (egress: the host's upload).
    fn eth0(&self, h: &Host) -> Dev {
        Dev {
            netns: Some(format!("kg-{}-{}", self.id, h.name)),
            name: "eth0".into(),
        }
    }

    fn host_ends(&self, h: &Host) -> [Dev; 2] {
        [self.veth(h), self.eth0(h)]
    }
}

/// Receives one TCP stream on [`PORT`] and prints `bytes seconds`, timed from its first
/// byte to EOF.
const RECEIVE: &str = r#"python3 -c '
import socket, time
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", 5201)); s.listen(1); s.settimeout(60)
c, _ = s.accept(); c.settimeout(60); n = 0; t = None
while True:
    b = c.recv(1 << 16)
    if not b: break
    t = t or time.monotonic(); n += len(b)
print(n, time.monotonic() - t)
'"#;

/// Sends [`BYTES`] to `addr:port`, retrying the connect while the receiver starts.
fn send_script(addr: &str, port: u16) -> String {
    format!(
        r#"python3 -c '
import socket, time
for _ in range(100):
    try: c = socket.create_connection(("{addr}", {port}), timeout=2); break
    except OSError: time.sleep(0.1)
else: raise SystemExit("nothing listens on {addr}:{port}")
buf = bytes(1 << 16)
for _ in range({BYTES} // len(buf)): c.sendall(buf)
c.shutdown(socket.SHUT_WR); c.recv(1)
'"#
    )
}

/// Runs the receiver on `to` while `send` sends to it; returns the rate in bit/s.
fn measure_into(lab: &LabGuard, to: &Host, send: impl FnOnce() + Send) -> f64 {
    let printed = thread::scope(|s| {
        let receiver = s.spawn(|| lab.ssh_ok(to, RECEIVE));
        send();
        receiver.join().expect("receiver thread")
    });
    let mut fields = printed.split_whitespace();
    let n: f64 = fields.next().and_then(|f| f.parse().ok()).expect("bytes");
    let secs: f64 = fields.next().and_then(|f| f.parse().ok()).expect("seconds");
    assert_eq!(n as u64, BYTES, "{} received {printed}", to.name);
    n * 8.0 / secs
}

/// Sends [`BYTES`] from this machine to `to` over plain TCP.
fn send_from_machine(to: &Host) {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut conn = loop {
        match TcpStream::connect((to.address.as_str(), PORT)) {
            Ok(c) => break c,
            Err(_) if Instant::now() < deadline => thread::sleep(Duration::from_millis(100)),
            Err(e) => panic!("connect to {}:{PORT}: {e}", to.address),
        }
    };
    let buf = vec![0u8; 1 << 16];
    for _ in 0..BYTES / buf.len() as u64 {
        conn.write_all(&buf).expect("send");
    }
    conn.shutdown(std::net::Shutdown::Write).expect("shutdown");
    let _ = conn.read(&mut [0u8; 1]);
}

/// Both `hosts` send [`BYTES`] to a listener on the machine's bridge address at once;
/// returns the aggregate rate in bit/s, from the first byte to the last EOF.
fn measure_download(lab: &LabGuard, gateway: &str, hosts: &[&Host]) -> f64 {
    let listener = TcpListener::bind((gateway, 0)).expect("listen on the bridge address");
    let port = listener.local_addr().expect("port").port();
    // Polled, so a sender that never connects fails the test instead of hanging it.
    listener
        .set_nonblocking(true)
        .expect("nonblocking listener");
    let deadline = Instant::now() + Duration::from_secs(30);
    let accept = || loop {
        match listener.accept() {
            Ok((conn, _)) => {
                conn.set_nonblocking(false).expect("blocking stream");
                return conn;
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                assert!(Instant::now() < deadline, "no sender connected in 30 s");
                thread::sleep(Duration::from_millis(20));
            }
            Err(e) => panic!("accept: {e}"),
        }
    };
    thread::scope(|s| {
        for h in hosts {
            s.spawn(move || lab.ssh_ok(h, &send_script(gateway, port)));
        }
        let readers: Vec<_> = hosts
            .iter()
            .map(|_| {
                let mut conn = accept();
                s.spawn(move || {
                    let (mut buf, mut n, mut first) = (vec![0u8; 1 << 16], 0u64, None);
                    loop {
                        let got = conn.read(&mut buf).expect("receive");
                        if got == 0 {
                            return (n, first.expect("some bytes"), Instant::now());
                        }
                        first.get_or_insert_with(Instant::now);
                        n += got as u64;
                    }
                })
            })
            .collect();
        let ends: Vec<(u64, Instant, Instant)> = readers
            .into_iter()
            .map(|r| r.join().expect("reader"))
            .collect();
        let total: u64 = ends.iter().map(|e| e.0).sum();
        assert_eq!(total, BYTES * hosts.len() as u64);
        let first = ends.iter().map(|e| e.1).min().expect("readers");
        let last = ends.iter().map(|e| e.2).max().expect("readers");
        total as f64 * 8.0 / (last - first).as_secs_f64()
    })
}

fn assert_shaped(what: &str, bits: f64) {
    let ratio = bits / RATE_BITS;
    eprintln!(
        "{what}: {:.1} Mbit/s ({ratio:.2}x the {RATE} limit)",
        bits / 1e6
    );
    assert!(
        (0.3..1.15).contains(&ratio),
        "{what}: {:.1} Mbit/s is {ratio:.2}x the {RATE} limit, outside 0.3x..1.15x",
        bits / 1e6
    );
}

/// Asserts `dev`'s tbf sent at least one transfer since `before`.
fn assert_carried(dev: &Dev, before: u64, transfers: u64) {
    let sent = dev.tbf_bytes() - before;
    assert!(
        sent >= BYTES * transfers,
        "{}'s tbf sent only {sent} bytes of {transfers} x {BYTES}",
        dev.name
    );
}

#[test]
fn link_rate_shapes_every_lab_link_and_clear_removes_it() {
    let mut lab = LabGuard::reserve();
    lab.bring_up_with(2, &["--link-rate", RATE]);
    let listing = lab.list();
    assert_eq!(listing["linkRate"], RATE, "{listing}");
    assert_eq!(listing["linkRateBitsPerSecond"], 50_000_000u64);
    let gateway = listing["gateway"].as_str().expect("gateway").to_string();
    let links = Links::of(&lab);
    let (h1, h2) = (lab.host("lab-1").clone(), lab.host("lab-2").clone());

    // tbf at the rate on both ends of both hosts' links, on the bridge and on the ifb
    // that the bridge's ingress is redirected to.
    let ingress = links.bridge.qdisc("ingress");
    assert_eq!(ingress[0]["kind"], "ingress", "{ingress}");
    let filters = Command::new("tc")
        .args(["-j", "filter", "show", "dev", &links.bridge.name, "ingress"])
        .output()
        .expect("tc filter");
    assert!(
        String::from_utf8_lossy(&filters.stdout).contains(&format!("\"{}\"", links.ifb.name)),
        "the bridge's ingress must be redirected to {}:\n{}",
        links.ifb.name,
        describe(&filters)
    );

    // Host to host: lab-1's upload, then lab-2's download.
    let (up1, down2) = (links.eth0(&h1).tbf_bytes(), links.veth(&h2).tbf_bytes());
    let bits = measure_into(&lab, &h2, || {
        lab.ssh_ok(&h1, &send_script(&h2.address, PORT));
    });
    assert_shaped("lab-1 -> lab-2", bits);
    assert_carried(&links.eth0(&h1), up1, 1);
    assert_carried(&links.veth(&h2), down2, 1);

    // Machine to host: the engine's upload (the bridge), then lab-1's download.
    let (bridge, down1) = (links.bridge.tbf_bytes(), links.veth(&h1).tbf_bytes());
    let bits = measure_into(&lab, &h1, || send_from_machine(&h1));
    assert_shaped("machine -> lab-1", bits);
    assert_carried(&links.bridge, bridge, 1);
    assert_carried(&links.veth(&h1), down1, 1);

    // Both hosts to the machine at once: each host's upload allows 50mbit, so only the
    // ifb holds the engine's download to the limit.
    let ifb = links.ifb.tbf_bytes();
    let bits = measure_download(&lab, &gateway, &[&h1, &h2]);
    assert_shaped("lab-1 + lab-2 -> machine", bits);
    assert_carried(&links.ifb, ifb, 2);

    // A host booted again gets the rate back even where its qdiscs were lost (as when the
    // machine reboots and the namespace is made anew); a host added later gets it too.
    let out = lab.kubegrid(&["stop", "lab-2"]);
    assert!(out.status.success(), "{}", describe(&out));
    for dev in links.host_ends(&h2) {
        assert!(dev.has_tbf(), "{}: tbf must survive a stop", dev.name);
        let mut del = Command::new("tc");
        if let Some(ns) = &dev.netns {
            del.args(["-n", ns]);
        }
        let out = del
            .args(["qdisc", "del", "dev", &dev.name, "root"])
            .output()
            .expect("tc");
        assert!(out.status.success(), "{}", describe(&out));
    }
    let out = lab.kubegrid(&["start", "lab-2"]);
    assert!(out.status.success(), "{}", describe(&out));
    lab.bring_up(3);
    let h3 = lab.host("lab-3").clone();
    for h in [&h2, &h3] {
        for dev in links.host_ends(h) {
            dev.tbf_bytes();
        }
    }

    // Clearing takes every qdisc and the ifb away; the state forgets the rate.
    let out = lab.kubegrid(&["shape", "--clear", "-o", "json"]);
    assert!(out.status.success(), "{}", describe(&out));
    assert_eq!(lab.list()["linkRate"], Value::Null);
    for h in [&h1, &h2, &h3] {
        for dev in links.host_ends(h) {
            assert!(!dev.has_tbf(), "{} of {} still has tbf", dev.name, h.name);
        }
    }
    assert!(!links.bridge.has_tbf(), "the bridge still has tbf");
    assert_eq!(links.bridge.qdisc("ingress"), Value::Array(Vec::new()));
    assert_eq!(links.ifb.qdisc("root"), Value::Null, "the ifb must be gone");
    let bits = measure_into(&lab, &h2, || {
        lab.ssh_ok(&h1, &send_script(&h2.address, PORT));
    });
    eprintln!("lab-1 -> lab-2 unshaped: {:.1} Mbit/s", bits / 1e6);
    assert!(
        bits > 1.15 * RATE_BITS,
        "{:.1} Mbit/s after --clear",
        bits / 1e6
    );

    // `lab down` needs nothing more: no link of the lab is left.
    let out = lab.kubegrid(&["shape", "--rate", RATE]);
    assert!(out.status.success(), "{}", describe(&out));
    assert!(links.ifb.has_tbf());
    let out = lab.kubegrid(&["down", "--all"]);
    assert!(out.status.success(), "{}", describe(&out));
    let left = Command::new("ip")
        .args(["-br", "link"])
        .output()
        .expect("ip link");
    let left = String::from_utf8_lossy(&left.stdout);
    for name in [
        &links.bridge.name,
        &links.ifb.name,
        &format!("kg{}-", links.id),
    ] {
        assert!(
            !left.contains(name.as_str()),
            "{name} left after down:\n{left}"
        );
    }
}
