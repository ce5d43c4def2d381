//! `kubegrid bundle`: keys, signatures and inspection of offline bundles.

use std::path::PathBuf;

use clap::{Args, Subcommand};
use kubegrid_bundle::{BundleDiff, Inspection};
use serde_json::json;

use super::{Output, emit};
use crate::exit;

/// `kubegrid bundle`.
#[derive(Debug, Args)]
pub struct BundleArgs {
    /// What to do.
    #[command(subcommand)]
    pub command: BundleCommand,
}

/// Bundle commands.
#[derive(Debug, Subcommand)]
pub enum BundleCommand {
    /// Make an Ed25519 key pair for signing bundles; never overwrites a file.
    Keygen {
        /// Where to write the private key (mode 0600).
        #[arg(long, value_name = "FILE")]
        private: PathBuf,
        /// Where to write the public key.
        #[arg(long, value_name = "FILE")]
        public: PathBuf,
    },
    /// Verify every artifact, then sign the manifest (writes DIR/manifest.yaml.sig).
    Sign {
        /// The bundle directory.
        dir: PathBuf,
        /// The private key from `bundle keygen`.
        #[arg(long, value_name = "FILE")]
        key: PathBuf,
    },
    /// Check the manifest's signature, then every artifact's size and sha256.
    Verify {
        /// The bundle directory.
        dir: PathBuf,
        /// The public key from `bundle keygen`.
        #[arg(long, value_name = "FILE")]
        public_key: PathBuf,
    },
    /// Show the versions, arches and artifacts a bundle holds (reads the manifest only).
    Inspect {
        /// The bundle directory.
        dir: PathBuf,
    },
    /// Compare two bundles' artifacts by kind, name and arch.
    Diff {
        /// The old bundle directory.
        a: PathBuf,
        /// The new bundle directory.
        b: PathBuf,
    },
}

/// Runs a `bundle` command.
pub fn run(args: &BundleArgs, output: Output) -> anyhow::Result<u8> {
    match &args.command {
        BundleCommand::Keygen { private, public } => {
            let key = kubegrid_bundle::generate_key(private, public)?;
            let doc = json!({
                "privateKey": private,
                "publicKey": public,
                "fingerprint": key.fingerprint(),
            });
            emit(output, &doc, || {
                format!(
                    "wrote private key {} (mode 0600, keep it secret)\nwrote public key  {}\nfingerprint {}\n",
                    private.display(),
                    public.display(),
                    key.fingerprint()
                )
            })?;
        }
        BundleCommand::Sign { dir, key } => {
            let signature = kubegrid_bundle::sign(dir, key)?;
            emit(output, &json!({ "signature": signature }), || {
                format!("signed {}: {}\n", dir.display(), signature.display())
            })?;
        }
        BundleCommand::Verify { dir, public_key } => {
            let report = kubegrid_bundle::verify(dir, public_key)?;
            emit(output, &report, || {
                format!(
                    "bundle {} verified: signed by {}, {} artifacts, {}\n",
                    report.name.as_deref().unwrap_or(&dir.display().to_string()),
                    report.key_fingerprint,
                    report.artifacts,
                    size(report.bytes)
                )
            })?;
        }
        BundleCommand::Inspect { dir } => {
            let seen = kubegrid_bundle::inspect(dir)?;
            emit(output, &seen, || inspection_text(&seen))?;
        }
        BundleCommand::Diff { a, b } => {
            let d = kubegrid_bundle::diff(a, b)?;
            emit(output, &d, || diff_text(&d))?;
        }
    }
    Ok(exit::OK)
}

fn inspection_text(seen: &Inspection) -> String {
    let name = seen
        .name
        .clone()
        .unwrap_or_else(|| seen.dir.display().to_string());
    let mut s = format!(
        "bundle {name}  manifest v{}  {}\narches: {}\n",
        seen.manifest_version,
        if seen.signed {
            "signed (signature not checked; use `bundle verify`)"
        } else {
            "unsigned"
        },
        seen.arches.join(", ")
    );
    let mut rows = vec![["KIND", "NAME", "VERSION", "ARCH", "SIZE"].map(String::from)];
    for (kind, artifacts) in &seen.kinds {
        for a in artifacts {
            rows.push([
                kind.clone(),
                a.name
                    .clone()
                    .unwrap_or_else(|| a.path.display().to_string()),
                a.version.clone().unwrap_or_else(|| "-".into()),
                a.arch.clone(),
                size(a.size),
            ]);
        }
    }
    s.push_str(&table(&rows));
    s.push_str(&format!(
        "{} artifacts, {}\n",
        seen.artifacts,
        size(seen.bytes)
    ));
    s
}

fn diff_text(d: &BundleDiff) -> String {
    if d.is_empty() {
        return "the bundles hold the same artifacts\n".into();
    }
    let or_dash = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".into());
    let mut rows = vec![["", "KIND", "NAME", "ARCH", "FROM", "TO"].map(String::from)];
    for v in &d.added {
        let k = &v.key;
        rows.push(["+", &k.kind, &k.name, &k.arch, "-", &or_dash(&v.version)].map(String::from));
    }
    for v in &d.removed {
        let k = &v.key;
        rows.push(["-", &k.kind, &k.name, &k.arch, &or_dash(&v.version), "-"].map(String::from));
    }
    for c in &d.changed {
        let k = &c.key;
        let (from, to) = if c.from_version == c.to_version {
            // Same version, other bytes: the sha256 prefixes are what tells them apart.
            (
                format!("{} ({})", or_dash(&c.from_version), &c.from_sha256[..12]),
                format!("{} ({})", or_dash(&c.to_version), &c.to_sha256[..12]),
            )
        } else {
            (or_dash(&c.from_version), or_dash(&c.to_version))
        };
        rows.push(["~", &k.kind, &k.name, &k.arch, &from, &to].map(String::from));
    }
    let mut s = table(&rows);
    s.push_str(&format!(
        "{} added, {} removed, {} changed\n",
        d.added.len(),
        d.removed.len(),
        d.changed.len()
    ));
    s
}

/// Left-aligned columns two spaces apart, sized to the widest cell.
fn table<const N: usize>(rows: &[[String; N]]) -> String {
    let mut widths = [0usize; N];
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut s = String::new();
    for row in rows {
        let line: Vec<String> = row
            .iter()
            .zip(widths)
            .map(|(cell, w)| format!("{cell:<w$}"))
            .collect();
        s.push_str(line.join("  ").trim_end());
        s.push('\n');
    }
    s
}

/// Bytes in binary units, one decimal.
fn size(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    #[expect(
        clippy::cast_precision_loss,
        reason = "one decimal place is all that is shown"
    )]
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}
