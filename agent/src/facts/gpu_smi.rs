//! What `nvidia-smi -q -x` reports: the driver and CUDA versions and, per GPU, its bus id,
//! name, UUID, MIG mode and NVLink fabric state. nvidia-smi answers only with a loaded driver;
//! where it is installed and fails, what it said is kept, since that is the usual first clue
//! (a driver/library version mismatch, a module that did not load).

use std::{collections::BTreeMap, path::Path, time::Duration};

use super::{SmiGpu, SmiReport};
use crate::{exec, fsutil::under_root};

/// How long nvidia-smi may take; it can hang on a GPU that fell off the bus.
const LIMIT: Duration = Duration::from_secs(10);

/// At most this many characters of what a failed nvidia-smi said are kept.
const ERROR_CHARS: usize = 300;

/// nvidia-smi's report on the host under `root`: `None` where it is not installed (at
/// `/usr/bin/nvidia-smi` under `root`, or on PATH when `root` is `/`), else the report or a
/// short text saying why there is none.
pub fn query(root: &Path) -> Option<Result<SmiReport, String>> {
    let local = under_root(root, Path::new("/usr/bin/nvidia-smi"));
    let program = if local.is_file() {
        local
    } else if root == Path::new("/") {
        exec::which("nvidia-smi")?
    } else {
        return None;
    };
    let argv = [
        program.to_string_lossy().into_owned(),
        "-q".into(),
        "-x".into(),
    ];
    let ran = match exec::run_with(&argv, &BTreeMap::new(), Some(LIMIT)) {
        Ok(ran) => ran,
        Err(e) => return Some(Err(short(&format!("nvidia-smi did not start: {e}")))),
    };
    if !ran.success() {
        let said = first_lines(&format!("{}\n{}", ran.stdout, ran.stderr));
        return Some(Err(short(&format!(
            "nvidia-smi -q -x {}: {said}",
            ran.status_text()
        ))));
    }
    Some(parse_smi_xml(&ran.stdout).map_err(|why| short(&format!("nvidia-smi -q -x: {why}"))))
}

/// Parses `nvidia-smi -q -x` output. Elements it does not read are ignored, so newer drivers'
/// additions do not matter; `N/A` (not supported) reads as absent.
pub fn parse_smi_xml(xml: &str) -> Result<SmiReport, String> {
    let options = roxmltree::ParsingOptions {
        allow_dtd: true,
        ..roxmltree::ParsingOptions::default()
    };
    let doc = roxmltree::Document::parse_with_options(xml, options)
        .map_err(|e| format!("the output is not XML ({e})"))?;
    let log = doc.root_element();
    if log.tag_name().name() != "nvidia_smi_log" {
        return Err(format!(
            "expected an nvidia_smi_log document, got <{}>",
            log.tag_name().name()
        ));
    }
    let gpus = log
        .children()
        .filter(|n| n.has_tag_name("gpu"))
        .map(|gpu| SmiGpu {
            pci_bus_id: text(gpu, &["pci", "pci_bus_id"])
                .or_else(|| gpu.attribute("id").map(str::to_string))
                .unwrap_or_default(),
            product_name: text(gpu, &["product_name"]).unwrap_or_default(),
            uuid: text(gpu, &["uuid"]).unwrap_or_default(),
            mig_mode: text(gpu, &["mig_mode", "current_mig"]),
            fabric_state: text(gpu, &["fabric", "state"]),
        })
        .collect();
    Ok(SmiReport {
        driver_version: text(log, &["driver_version"]).unwrap_or_default(),
        cuda_version: text(log, &["cuda_version"]).unwrap_or_default(),
        gpus,
    })
}

/// The trimmed text at `path` below `node`; absent, empty and `N/A` give `None`.
fn text(node: roxmltree::Node<'_, '_>, path: &[&str]) -> Option<String> {
    let found = path
        .iter()
        .try_fold(node, |n, name| n.children().find(|c| c.has_tag_name(*name)))?;
    let value = found.text()?.trim();
    (!value.is_empty() && value != "N/A").then(|| value.to_string())
}

/// The first two non-empty lines, joined: nvidia-smi's failures say what is wrong up front.
fn first_lines(text: &str) -> String {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .take(2)
        .collect::<Vec<_>>()
        .join(" ")
}

fn short(text: &str) -> String {
    match text.char_indices().nth(ERROR_CHARS) {
        Some((cut, _)) => format!("{}...", &text[..cut]),
        None => text.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;
    use crate::testutil::{tree, write};

    const ONE_GPU: &str = r#"<?xml version="1.0" ?>
<!DOCTYPE nvidia_smi_log SYSTEM "nvsmi_device_v12.dtd">
<nvidia_smi_log>
	<timestamp>Mon Oct 14 09:12:44 2024</timestamp>
	<driver_version>550.127.05</driver_version>
	<cuda_version>12.4</cuda_version>
	<attached_gpus>1</attached_gpus>
	<gpu id="00000000:01:00.0">
		<product_name>NVIDIA L4</product_name>
		<uuid>GPU-6f1b2a9e-0d4c-4c71-9a0e-3b5c2d8e7f10</uuid>
		<mig_mode>
			<current_mig>N/A</current_mig>
			<pending_mig>N/A</pending_mig>
		</mig_mode>
		<pci>
			<pci_bus>01</pci_bus>
			<pci_bus_id>00000000:01:00.0</pci_bus_id>
		</pci>
		<fabric>
			<state>N/A</state>
			<status>N/A</status>
		</fabric>
	</gpu>
</nvidia_smi_log>
"#;

    #[test]
    fn reads_versions_and_gpus_and_treats_n_a_as_absent() {
        let report = parse_smi_xml(ONE_GPU).unwrap();
        assert_eq!(report.driver_version, "550.127.05");
        assert_eq!(report.cuda_version, "12.4");
        assert_eq!(
            report.gpus,
            vec![SmiGpu {
                pci_bus_id: "00000000:01:00.0".into(),
                product_name: "NVIDIA L4".into(),
                uuid: "GPU-6f1b2a9e-0d4c-4c71-9a0e-3b5c2d8e7f10".into(),
                mig_mode: None,
                fabric_state: None,
            }]
        );
    }

    #[test]
    fn refuses_what_is_not_its_xml() {
        assert!(
            parse_smi_xml("No devices were found")
                .unwrap_err()
                .contains("not XML")
        );
        assert!(
            parse_smi_xml("<other/>")
                .unwrap_err()
                .contains("expected an nvidia_smi_log document")
        );
    }

    fn script(root: &Path, body: &str) {
        write(root, "usr/bin/nvidia-smi", &format!("#!/bin/sh\n{body}\n"));
        let path = root.join("usr/bin/nvidia-smi");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }

    #[test]
    fn a_failing_nvidia_smi_leaves_what_it_said() {
        let dir = tree(&[]);
        assert_eq!(query(dir.path()), None, "not installed");
        script(
            dir.path(),
            "echo \"NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver. Make sure that the latest NVIDIA driver is installed and running.\"\nexit 9",
        );
        let why = query(dir.path()).unwrap().unwrap_err();
        assert!(
            why.starts_with("nvidia-smi -q -x exited with code 9: NVIDIA-SMI has failed"),
            "{why}"
        );
    }
}
