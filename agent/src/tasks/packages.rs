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

/// Verifies the blobs, installs them in one call and confirms the versions; returns the
/// installer's output tail.
fn install(db: PackageDb, todo: &[&PackageRef], ctx: &Ctx) -> Result<String> {
    let mut files = Vec::with_capacity(todo.len());
    for p in todo {
        let what = format!("package {} {}", p.name, p.version);
        let path = ctx.verified_blob(&p.sha256, &what)?;
        files.push(path.to_string_lossy().into_owned());
    }
    let (mut argv, env) = match db {
        // dpkg fsyncs every unpacked file; on many hosts sharing disks (VMs, containers) that
        // doubles install time. It unpacks without them here, and one syncfs below makes the
        // whole install durable before the task reports success.
        PackageDb::Dpkg => (
            vec!["dpkg", "-i", "--force-confold", "--force-unsafe-io"],
            BTreeMap::from([("DEBIAN_FRONTEND".to_string(), "noninteractive".to_string())]),
        ),
        PackageDb::Rpm => (
            vec!["rpm", "-U", "--replacepkgs", "--oldpackage"],
            BTreeMap::new(),
        ),
    };
    argv.extend(files.iter().map(String::as_str));
    let argv: Vec<String> = argv.into_iter().map(str::to_string).collect();
    let ran = exec::run_with(&argv, &env, None)?
        .ok_or("the bundle must carry every dependency of these packages; the output says which is missing")?;
    let output = ran.tail();
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
