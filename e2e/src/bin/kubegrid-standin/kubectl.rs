//! The STAND-IN kubectl (`apply -f FILE`, `version`) and crictl (records and says so).

use std::{fs, io::Read, path::Path};

use serde_json::{Value, json};

use crate::{Ctx, Error, io_error, record::Record, yaml};

const APPLY_VALUE_FLAGS: &[&str] = &[
    "-f",
    "--filename",
    "--kubeconfig",
    "--field-manager",
    "-n",
    "--namespace",
    "--context",
];
const APPLY_BOOL_FLAGS: &[&str] = &["--server-side", "--force-conflicts", "--wait", "--prune"];

/// Runs one kubectl command line (without argv[0]).
pub fn run_kubectl(ctx: &Ctx, args: &[String], rec: &mut Record) -> Result<(), Error> {
    // Global flags may come before the subcommand (`kubectl --kubeconfig F apply -f X`); they
    // are moved after it, where apply reads them.
    let mut global = Vec::new();
    let mut i = 0;
    while i < args.len() && args[i].starts_with('-') && args[i] != "--version" {
        global.push(args[i].clone());
        if APPLY_VALUE_FLAGS.contains(&args[i].as_str()) && i + 1 < args.len() {
            global.push(args[i + 1].clone());
            i += 1;
        }
        i += 1;
    }
    let rest: Vec<String> = args[(i + 1).min(args.len())..]
        .iter()
        .chain(&global)
        .cloned()
        .collect();
    match args.get(i).map(String::as_str) {
        Some("version") | Some("--version") => {
            println!(
                "Client Version: {} ({})",
                ctx.version,
                ctx.tool.disclaimer()
            );
            if !rest.iter().any(|a| a == "--client" || a == "--client=true") {
                println!("Server Version: none (STAND-IN: no apiserver runs)");
            }
            Ok(())
        }
        Some("apply") => apply(&rest, rec),
        _ => Err(Error::Usage(format!(
            "unsupported command line {args:?}; the stand-in kubectl takes: apply -f FILE [--kubeconfig F] \
             [--server-side] [--force-conflicts], version [--client]"
        ))),
    }
}

/// Splits kubectl's flags (`--name=value`, `--name value`, `-f value`) into (name, value).
fn apply_flags(args: &[String]) -> Result<Vec<(String, String)>, Error> {
    let mut out = Vec::new();
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let (name, inline) = match arg.split_once('=') {
            Some((n, v)) => (n, Some(v.to_string())),
            None => (arg.as_str(), None),
        };
        if APPLY_VALUE_FLAGS.contains(&name) {
            let value = inline
                .or_else(|| it.next().cloned())
                .ok_or_else(|| Error::Usage(format!("flag needs an argument: {name}")))?;
            out.push((name.trim_start_matches('-').to_string(), value));
        } else if APPLY_BOOL_FLAGS.contains(&name) {
            out.push((
                name.trim_start_matches('-').to_string(),
                inline.unwrap_or("true".into()),
            ));
        } else {
            return Err(Error::Usage(format!(
                "unknown argument {arg} for the stand-in `kubectl apply` (takes {} {})",
                APPLY_VALUE_FLAGS.join(" "),
                APPLY_BOOL_FLAGS.join(" ")
            )));
        }
    }
    Ok(out)
}

/// Every object in a document: the document itself, or a `*List`'s items.
fn objects(doc: &Value) -> Vec<&Value> {
    let is_list = doc
        .get("kind")
        .and_then(Value::as_str)
        .is_some_and(|k| k.ends_with("List"));
    match doc.get("items").and_then(Value::as_array) {
        Some(items) if is_list => items.iter().collect(),
        _ => vec![doc],
    }
}

fn apply(args: &[String], rec: &mut Record) -> Result<(), Error> {
    let flags = apply_flags(args)?;
    let value = |n: &str| {
        flags
            .iter()
            .rev()
            .find(|(k, _)| k == n || (n == "filename" && k == "f"))
            .map(|(_, v)| v.as_str())
    };
    if let Some(kubeconfig) = value("kubeconfig")
        && !Path::new(kubeconfig).is_file()
    {
        return Err(Error::Invalid(format!(
            "error loading config file \"{kubeconfig}\": open {kubeconfig}: no such file or directory"
        )));
    }
    let files: Vec<&str> = flags
        .iter()
        .filter(|(k, _)| k == "f" || k == "filename")
        .map(|(_, v)| v.as_str())
        .collect();
    if files.is_empty() {
        return Err(Error::Usage("error: must specify one of -f and -k".into()));
    }
    let mut applied = Vec::new();
    let mut problems = Vec::new();
    for file in files {
        let text = if file == "-" {
            let mut s = String::new();
            std::io::stdin()
                .read_to_string(&mut s)
                .map_err(io_error("read", Path::new("/dev/stdin")))?;
            s
        } else {
            fs::read_to_string(file).map_err(io_error("read", Path::new(file)))?
        };
        let docs = yaml::parse_docs(&text)
            .map_err(|e| Error::Invalid(format!("error parsing {file}: {e}")))?;
        for (i, doc) in docs.iter().enumerate() {
            for obj in objects(doc) {
                let get = |p: &str| {
                    yaml::at(obj, p)
                        .and_then(Value::as_str)
                        .filter(|s| !s.is_empty())
                };
                match (get("apiVersion"), get("kind"), get("metadata.name")) {
                    (Some(api), Some(kind), Some(name)) => applied.push(json!({
                        "apiVersion": api, "kind": kind, "name": name,
                        "namespace": get("metadata.namespace"), "file": file,
                    })),
                    _ => problems.push(format!(
                        "error validating \"{file}\" document {}: every object needs apiVersion, kind and metadata.name",
                        i + 1
                    )),
                }
            }
        }
    }
    rec.config = Value::Array(applied.clone());
    if !problems.is_empty() {
        return Err(Error::Invalid(problems.join("\n")));
    }
    let verb = if value("server-side") == Some("true") {
        "serverside-applied"
    } else {
        "configured"
    };
    for obj in &applied {
        let kind = obj["kind"]
            .as_str()
            .unwrap_or_default()
            .to_ascii_lowercase();
        println!(
            "{kind}/{} {verb} (STAND-IN: nothing was sent to an apiserver)",
            obj["name"].as_str().unwrap_or_default()
        );
    }
    Ok(())
}

/// Runs one crictl command line: records it (by the caller), says it is a stand-in, exits 0.
pub fn run_crictl(ctx: &Ctx, args: &[String]) -> Result<(), Error> {
    match args
        .iter()
        .find(|a| !a.starts_with('-'))
        .map(String::as_str)
    {
        Some("version") => println!("crictl version {} ({})", ctx.version, ctx.tool.disclaimer()),
        Some("info") => println!(
            "{}",
            json!({"standIn": ctx.tool.disclaimer(), "status": {}})
        ),
        _ if args.iter().any(|a| a == "--version") => {
            println!("crictl version {} ({})", ctx.version, ctx.tool.disclaimer())
        }
        _ => ctx.say("recorded; the stand-in crictl talks to no runtime"),
    }
    Ok(())
}
