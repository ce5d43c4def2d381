//! The packages module: package files from the blob store, installed in one transaction.

use std::collections::BTreeMap;

use super::{Ctx, Outcome};
use crate::{
    error::{Error, Result},
    exec::{self, which},
    facts::PackageDb,
    protocol::{PackageFormat, PackageRef, PackagesArgs},
};

/// Installs every package that is not installed at exactly its version.
pub fn apply(args: &PackagesArgs, ctx: &Ctx) -> Result<Outcome> {
    let mut changes = Vec::new();
    let mut output = String::new();
    for format in [PackageFormat::Deb, PackageFormat::Rpm] {
        let wanted: Vec<&PackageRef> = args
            .packages
            .iter()
            .filter(|p| p.format == format)
            .collect();
        if wanted.is_empty() {
            continue;
        }
        let db = db_for(format, &wanted)?;
        let names: Vec<&str> = wanted.iter().map(|p| p.name.as_str()).collect();
        let before = db.installed(&names)?;
        let todo: Vec<&PackageRef> = wanted
            .into_iter()
            .filter(|p| before.get(&p.name) != Some(&p.version))
            .collect();
        if todo.is_empty() {
            continue;
        }
        changes.extend(todo.iter().map(|p| describe(p, &before)));
        if !ctx.check_mode {
            output.push_str(&install(db, &todo, ctx)?);
        }
    }
    let all: Vec<String> = args
        .packages
        .iter()
        .map(|p| format!("{} {}", p.name, p.version))
        .collect();
    if changes.is_empty() {
        return Ok(Outcome::unchanged(format!("installed: {}", all.join(", "))));
    }
    Ok(Outcome {
        changed: true,
        message: format!("install {}", changes.join(", ")),
        output: exec::tail(&output, exec::OUTPUT_TAIL_BYTES),
    })
}

fn describe(p: &PackageRef, before: &BTreeMap<String, String>) -> String {
    match before.get(&p.name) {
        Some(v) => format!("{} {} (have {v})", p.name, p.version),
        None => format!("{} {} (not installed)", p.name, p.version),
    }
}

fn db_for(format: PackageFormat, wanted: &[&PackageRef]) -> Result<PackageDb> {
    let (db, tool, format_name) = match format {
        PackageFormat::Deb => (PackageDb::Dpkg, "dpkg", "deb"),
        PackageFormat::Rpm => (PackageDb::Rpm, "rpm", "rpm"),
    };
    if which(tool).is_none() {
        return Err(Error::NoPackageTool {
            format: format_name,
            names: wanted
                .iter()
                .map(|p| p.name.as_str())
                .collect::<Vec<_>>()
                .join(", "),
            tool,
        });
    }
    Ok(db)
}

/// Verifies the blobs, installs them (one rpm transaction, or as few dpkg runs as the
/// pre-dependencies among them allow) and confirms the versions; returns the installers'
/// output tail.
fn install(db: PackageDb, todo: &[&PackageRef], ctx: &Ctx) -> Result<String> {
    let mut files = Vec::with_capacity(todo.len());
    for p in todo {
        let what = format!("package {} {}", p.name, p.version);
        let path = ctx.verified_blob(&p.sha256, &what)?;
        files.push(path.to_string_lossy().into_owned());
    }
    let env = BTreeMap::from([("DEBIAN_FRONTEND".to_string(), "noninteractive".to_string())]);
    let mut output = String::new();
    for run in install_runs(db, &files)? {
        let mut argv: Vec<String> = match db {
            // dpkg fsyncs every unpacked file; on many hosts sharing disks (VMs, containers)
            // that doubles install time. It unpacks without them here, and one syncfs below
            // makes the whole install durable before the task reports success.
            PackageDb::Dpkg => ["dpkg", "-i", "--force-confold", "--force-unsafe-io"],
            // rpm orders one transaction by its own dependencies, pre-requisites included.
            PackageDb::Rpm => ["rpm", "-U", "--replacepkgs", "--oldpackage"],
        }
        .map(str::to_string)
        .to_vec();
        argv.extend(run.iter().map(|&i| files[i].clone()));
        let ran = exec::run_with(&argv, &env, None)?
            .ok_or("the output names the package that failed and why: a dependency the bundle and the host lack, or a maintainer script (such as a DKMS module build)")?;
        output.push_str(&ran.tail());
    }
    let output = exec::tail(&output, exec::OUTPUT_TAIL_BYTES);
    // syncfs of the filesystems holding /usr and dpkg's database: a power cut after this task
    // reported success cannot leave an "installed" package with unwritten files.
    let sync: Vec<String> = ["sync", "-f", "/usr", "/var/lib"]
        .map(str::to_string)
        .to_vec();
    exec::run_with(&sync, &BTreeMap::new(), None)?
        .ok_or("sync after installing packages failed")?;
    let names: Vec<&str> = todo.iter().map(|p| p.name.as_str()).collect();
    let after = db.installed(&names)?;
    for p in todo {
        let found = after.get(&p.name);
        if found != Some(&p.version) {
            return Err(Error::PackageVersion {
                manager: db.name(),
                name: p.name.clone(),
                expected: p.version.clone(),
                found: found.cloned(),
                output,
            });
        }
    }
    Ok(output)
}

/// The installer runs for `files`, as indices into it: rpm takes them in one transaction;
/// dpkg needs a run of its own for each layer of pre-dependencies inside the set
/// ([`deb_order`](super::deb_order)).
fn install_runs(db: PackageDb, files: &[String]) -> Result<Vec<Vec<usize>>> {
    if db == PackageDb::Rpm {
        return Ok(vec![(0..files.len()).collect()]);
    }
    let mut relations = Vec::with_capacity(files.len());
    for file in files {
        let fields = exec::run(&["dpkg-deb", "-f", file, "Package", "Pre-Depends", "Depends"])?
            .ok_or("dpkg-deb cannot read this package's control fields")?;
        let name = fields
            .stdout
            .lines()
            .find_map(|l| l.strip_prefix("Package:"))
            .map(str::trim)
            .unwrap_or_default()
            .to_string();
        relations.push(super::deb_order::parse_relations(&name, &fields.stdout));
    }
    Ok(super::deb_order::dpkg_runs(&relations))
}
