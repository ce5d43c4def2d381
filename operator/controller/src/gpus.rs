//! Product names of NVIDIA data-center and workstation GPUs by PCI device id, so Node facts
//! say `H100 SXM5 80GB` rather than `NVIDIA 10de:2330`. The PCI id is what a host reports
//! without a driver; the name nvidia-smi prints needs the driver, which may not be installed.
//!
//! Source: the PCI ID Repository's pci.ids, version 2023.04.10 (Debian package `pci.ids`
//! 0.0~2023.04.11-1, /usr/share/misc/pci.ids), vendor 10de: the bracketed product name of
//! each device line, verbatim. Devices listed there by chip name only (e.g. 2302 `GH100`),
//! engineering samples, GRID, DRIVE and mining parts are left out; they keep the id form.

/// (device id, product name), sorted by id.
const NVIDIA_PRODUCTS: &[(u16, &str)] = &[
    (0x15f7, "Tesla P100 PCIe 12GB"),
    (0x15f8, "Tesla P100 PCIe 16GB"),
    (0x15f9, "Tesla P100 SXM2 16GB"),
    (0x1b38, "Tesla P40"),
    (0x1bb3, "Tesla P4"),
    (0x1db1, "Tesla V100 SXM2 16GB"),
    (0x1db3, "Tesla V100 FHHL 16GB"),
    (0x1db4, "Tesla V100 PCIe 16GB"),
    (0x1db5, "Tesla V100 SXM2 32GB"),
    (0x1db6, "Tesla V100 PCIe 32GB"),
    (0x1db8, "Tesla V100 SXM3 32GB"),
    (0x1dba, "Quadro GV100"),
    (0x1df6, "Tesla V100S PCIe 32GB"),
    (0x1e30, "Quadro RTX 6000/8000"),
    (0x1e36, "Quadro RTX 6000"),
    (0x1e78, "Quadro RTX 6000/8000"),
    (0x1eb8, "Tesla T4"),
    (0x20b0, "A100 SXM4 40GB"),
    (0x20b1, "A100 PCIe 40GB"),
    (0x20b2, "A100 SXM4 80GB"),
    (0x20b3, "A100-SXM-64GB"),
    (0x20b5, "A100 PCIe 80GB"),
    (0x20b7, "A30 PCIe"),
    (0x20f1, "A100 PCIe 40GB"),
    (0x20f3, "A800-SXM4-80GB"),
    (0x20f5, "A800 80GB PCIe"),
    (0x20f6, "A800 40GB PCIe"),
    (0x2230, "RTX A6000"),
    (0x2231, "RTX A5000"),
    (0x2232, "RTX A4500"),
    (0x2233, "RTX A5500"),
    (0x2235, "A40"),
    (0x2236, "A10"),
    (0x2237, "A10G"),
    (0x2238, "A10M"),
    (0x2313, "H100 CNX"),
    (0x2322, "H800 PCIe"),
    (0x2324, "H800"),
    (0x2330, "H100 SXM5 80GB"),
    (0x2331, "H100 PCIe"),
    (0x2336, "H100"),
    (0x2339, "H100"),
    (0x24b0, "RTX A4000"),
    (0x2531, "RTX A2000"),
    (0x2571, "RTX A2000 12GB"),
    (0x25b6, "A2 / A16"),
    (0x26b1, "L6000 / RTX 6000 Ada Generation"),
    (0x26b5, "L40"),
    (0x26b8, "L40G"),
    (0x27b8, "L4"),
];

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
        .and_then(|id| {
            NVIDIA_PRODUCTS
                .binary_search_by_key(&id, |(d, _)| *d)
                .ok()
                .map(|i| NVIDIA_PRODUCTS[i].1)
        });
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

    #[test]
    fn the_table_is_sorted_without_duplicates() {
        assert!(NVIDIA_PRODUCTS.windows(2).all(|w| w[0].0 < w[1].0));
    }
}
