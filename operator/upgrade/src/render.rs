//! The human form of a plan (`kubegrid upgrade plan` without `--output json`): per Node the
//! components that change, current → target; the numbered steps; notes; Nodes to uncordon;
//! blockers.

use std::fmt::{self, Write as _};

use crate::plan::{Plan, Step};
use crate::versions::show;

/// The plan as text, ending in a newline. Same as `plan.to_string()`.
pub fn render_text(plan: &Plan) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "Upgrade plan for cluster {}", plan.cluster);
    out.push('\n');

    let mut rows: Vec<[String; 4]> = vec![[
        "NODE".into(),
        "COMPONENT".into(),
        "CURRENT".into(),
        "TARGET".into(),
    ]];
    for n in &plan.nodes {
        if n.changes.is_empty() {
            rows.push([n.name.clone(), "-".into(), "-".into(), "at target".into()]);
        }
        for (i, c) in n.changes.iter().enumerate() {
            rows.push([
                if i == 0 {
                    n.name.clone()
                } else {
                    String::new()
                },
                c.component.as_str().into(),
                show(c.current.as_ref()),
                c.target.to_string(),
            ]);
        }
    }
    let widths: Vec<usize> = (0..4)
        .map(|col| rows.iter().map(|r| r[col].len()).max().unwrap_or(0))
        .collect();
    for r in &rows {
        let line = format!(
            "{:w0$}  {:w1$}  {:w2$}  {}",
            r[0],
            r[1],
            r[2],
            r[3],
            w0 = widths[0],
            w1 = widths[1],
            w2 = widths[2]
        );
        let _ = writeln!(out, "{}", line.trim_end());
    }

    if !plan.notes.is_empty() {
        out.push_str("\nNotes:\n");
        for n in &plan.notes {
            let _ = writeln!(out, "  - {n}");
        }
    }

    out.push_str("\nSteps:\n");
    if plan.steps.is_empty() {
        out.push_str("  none: every Node is at target\n");
    }
    let width = plan.steps.len().to_string().len();
    for (i, s) in plan.steps.iter().enumerate() {
        let _ = writeln!(out, "  {:>width$}. {}", i + 1, describe(s));
    }

    if !plan.uncordon.is_empty() {
        let _ = writeln!(
            out,
            "\nUncordon (cordoned and already at target): {}",
            plan.uncordon.join(", ")
        );
    }

    if plan.blockers.is_empty() {
        out.push_str("\nBlockers: none\n");
    } else {
        out.push_str("\nBlockers:\n");
        for b in &plan.blockers {
            let _ = writeln!(out, "  - [{}] {}", b.rule, b.message);
        }
    }
    out
}

/// One step in words.
pub fn describe(step: &Step) -> String {
    match step {
        Step::EtcdMember { node, from, to } => {
            format!("etcd member {node}: {from} -> {to}")
        }
        Step::KubeadmApply { node, version } => {
            format!("kubeadm upgrade apply v{version} on {node}")
        }
        Step::KubeadmNode { node, version } => {
            format!("kubeadm upgrade node on {node} (v{version})")
        }
        Step::Roll {
            nodes,
            kubelet,
            containerd,
            worker,
        } => {
            let what = if *worker { "worker" } else { "control plane" };
            let mut s = format!(
                "roll {} ({what}): drain, kubelet {kubelet}",
                nodes.join(", ")
            );
            if let Some(c) = containerd {
                let _ = write!(s, ", containerd {c}");
            }
            s.push_str(", uncordon");
            s
        }
    }
}

impl fmt::Display for Plan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&render_text(self))
    }
}
