//! The text form of `kubegrid certs`: a table per Node, then what a renewal or rotation did.

use kubegrid_engine::{
    certs::{CertRow, CertsReport},
    operation::{Mode, Outcome, Report},
};

/// Renders the report.
pub fn render(r: &Report) -> String {
    let mut s = String::new();
    let Some(c) = &r.certs else {
        s.push_str(&super::certs::failed(r));
        return s;
    };
    for n in &c.nodes {
        if !n.reachable {
            s.push_str(&format!("{}: not reachable; nothing read\n\n", n.node));
            continue;
        }
        s.push_str(&format!("{}\n", n.node));
        s.push_str(&table(&n.certificates));
        s.push('\n');
    }
    if let Some(e) = &c.earliest {
        s.push_str(&format!(
            "earliest expiry: {} {} ({}) on {}, {} day(s) left\n",
            e.name, e.file, e.not_after, e.node, e.days_left
        ));
    }
    if !c.expiring.is_empty() {
        s.push_str(&format!(
            "{} certificate(s) expire within {} days:\n",
            c.expiring.len(),
            c.warn_days
        ));
        for e in &c.expiring {
            s.push_str(&format!(
                "  {} {} {} ({} day(s) left)\n",
                e.node, e.name, e.file, e.days_left
            ));
        }
    }
    for f in &c.flagged {
        s.push_str(&format!("FLAGGED {} {}: {}\n", f.node, f.file, f.reason));
    }
    body(&mut s, c);
    match r.outcome {
        Outcome::PreflightFailed => s.push_str(&format!(
            "the {} is refused; nothing was changed\n",
            c.action
        )),
        Outcome::Unreachable if r.mode == Mode::Apply => {
            s.push_str("not every host could be reached; nothing was changed\n")
        }
        _ => {}
    }
    s.push_str(&super::certs::failed(r));
    s.push_str(&format!(
        "certs {} {}: {} Node(s), {} certificate(s) read, {} renewed, in {:.1}s (operation {})\n",
        c.action,
        r.cluster,
        r.hosts.len(),
        c.nodes.iter().map(|n| n.certificates.len()).sum::<usize>(),
        c.renewed.len(),
        r.duration_ms as f64 / 1000.0,
        r.operation,
    ));
    s
}

/// What a renewal or rotation did, and what refused it.
fn body(s: &mut String, c: &CertsReport) {
    for b in &c.blockers {
        s.push_str(&format!("BLOCKED: {b}\n"));
    }
    if let Some(rot) = &c.rotation {
        s.push_str(&format!(
            "rotation of the {} CA: {}{} (finished phases: {})\n",
            rot.ca,
            rot.phase,
            if rot.resumed { ", resumed" } else { "" },
            if rot.completed.is_empty() {
                "none".to_string()
            } else {
                rot.completed.join(", ")
            }
        ));
    }
    for n in &c.renewed {
        s.push_str(&format!(
            "renewed {} {} on {}: valid until {} (was {})\n",
            n.name, n.file, n.node, n.new_not_after, n.old_not_after
        ));
    }
    for k in &c.skipped {
        s.push_str(&format!(
            "not renewed {} {} on {}: {}\n",
            k.name, k.file, k.node, k.reason
        ));
    }
    for x in &c.restarts {
        s.push_str(&format!(
            "restarted {} on {}: {} in {:.1}s\n",
            x.what,
            x.node,
            if x.ok { "healthy" } else { "FAILED" },
            x.duration_ms as f64 / 1000.0
        ));
    }
    for e in &c.errors {
        s.push_str(&format!("ERROR: {e}\n"));
    }
}

/// One Node's certificates as aligned columns.
fn table(rows: &[CertRow]) -> String {
    let header = [
        "NAME",
        "FILE",
        "SUBJECT",
        "ISSUER",
        "SANS",
        "NOT AFTER",
        "DAYS",
        "JOURNAL",
    ];
    let cells: Vec<[String; 8]> = rows
        .iter()
        .map(|c| {
            let file = match &c.field {
                Some(f) => format!("{} {f}", c.file),
                None => c.file.clone(),
            };
            [
                c.name.clone(),
                file,
                c.subject.clone(),
                c.issuer.clone(),
                if c.sans.is_empty() {
                    "-".into()
                } else {
                    c.sans.join(",")
                },
                c.not_after.clone(),
                c.days_left.to_string(),
                serde_json::to_value(c.journal)
                    .ok()
                    .and_then(|v| v.as_str().map(String::from))
                    .unwrap_or_default()
                    + if c.flag.is_some() { " (FLAGGED)" } else { "" },
            ]
        })
        .collect();
    let mut width = header.map(str::len);
    for row in &cells {
        for (w, cell) in width.iter_mut().zip(row) {
            *w = (*w).max(cell.len());
        }
    }
    let line = |cols: &[&str]| {
        let mut out = String::from("  ");
        for (i, (cell, w)) in cols.iter().zip(width).enumerate() {
            if i + 1 == cols.len() {
                out.push_str(cell);
            } else {
                out.push_str(&format!("{cell:<w$}  "));
            }
        }
        out.push('\n');
        out
    };
    let mut s = line(&header);
    for row in &cells {
        s.push_str(&line(&row.iter().map(String::as_str).collect::<Vec<_>>()));
    }
    s
}
