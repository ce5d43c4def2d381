//! Model names of NVIDIA GPUs for Node status: the product name where the agent's table
//! ([`kubegrid_agent::facts::gpu_model`], from pci.ids) knows the PCI device id, so status says
//! `H100 SXM5 80GB` rather than `NVIDIA 10de:2330`.

/// The PCI vendor id of NVIDIA.
const NVIDIA: &str = "10de";

/// The model name of an NVIDIA device: its product name where the table knows the device id,
/// else `NVIDIA <vendor>:<device>`. Ids may carry a `0x` prefix, as sysfs writes them.
pub fn model(vendor: &str, device: &str) -> String {
    let vendor = vendor.trim_start_matches("0x").to_ascii_lowercase();
    let device = device.trim_start_matches("0x").to_ascii_lowercase();
    let known = (vendor == NVIDIA)
        .then(|| u16::from_str_radix(&device, 16).ok())
        .flatten()
        .and_then(kubegrid_agent::facts::gpu_model);
    match known {
        Some(name) => name.to_string(),
        None => format!("NVIDIA {vendor}:{device}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_ids_get_their_product_name() {
        assert_eq!(model("0x10de", "0x2330"), "H100 SXM5 80GB");
        assert_eq!(model("0x10de", "0x20b2"), "A100 SXM4 80GB");
        assert_eq!(model("0x10de", "0x1eb8"), "Tesla T4");
        assert_eq!(model("10de", "27B8"), "L4");
    }

    #[test]
    fn unknown_ids_keep_the_id_form() {
        assert_eq!(model("0x10de", "0x2302"), "NVIDIA 10de:2302");
        assert_eq!(model("0x10de", "0xffff"), "NVIDIA 10de:ffff");
        assert_eq!(model("0x10de", "nonsense"), "NVIDIA 10de:nonsense");
    }
}
