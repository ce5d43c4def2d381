//! Product names of NVIDIA data-center and workstation GPUs by PCI device id, so facts say
//! `H100 SXM5 80GB` rather than `NVIDIA 10de:2330`. The PCI id is what a host reports without
//! a driver; the name nvidia-smi prints needs the driver, which may not be installed yet.
//!
//! Source: the PCI ID Repository's pci.ids, version 2026.10.24 (Debian sid package `pci.ids`
//! 0.0~2026.10.24-1, /usr/share/misc/pci.ids), vendor 10de: the bracketed product name of
//! each device line, verbatim. Devices listed there by chip name only (e.g. 2302 `GH100`),
//! engineering samples (`PG5xx`), GRID, DRIVE, mining, embedded and laptop parts are left out;
//! they keep the id form. NVSwitches (1af1, 22a3) are bridges, not GPUs, and are counted apart.

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
    (0x20b8, "A100X"),
    (0x20b9, "A30X"),
    (0x20bd, "A800 SXM4 40GB"),
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
    (0x230c, "H20 NVL16"),
    (0x230e, "H20 NVL16"),
    (0x2313, "H100 CNX"),
    (0x2321, "H100L 94GB"),
    (0x2322, "H800 PCIe"),
    (0x2324, "H800"),
    (0x2328, "H20B"),
    (0x2329, "H20"),
    (0x232c, "H20 HBM3e"),
    (0x2330, "H100 SXM5 80GB"),
    (0x2331, "H100 PCIe"),
    (0x2335, "H200 SXM 141GB"),
    (0x2336, "H100"),
    (0x2337, "H100 SXM5 64GB"),
    (0x2338, "H100 SXM5 96GB"),
    (0x2339, "H100 SXM5 94GB"),
    (0x233a, "H800L 94GB"),
    (0x233b, "H200 NVL"),
    (0x233d, "H100 96GB"),
    (0x2342, "GH200 120GB / 480GB"),
    (0x2348, "GH200 144G HBM3e"),
    (0x237e, "H100 GH3"),
    (0x24b0, "RTX A4000"),
    (0x24b1, "RTX A4000H"),
    (0x2531, "RTX A2000"),
    (0x2571, "RTX A2000 12GB"),
    (0x25b0, "RTX A1000"),
    (0x25b2, "RTX A400"),
    (0x25b6, "A2 / A16"),
    (0x26b1, "RTX 6000 Ada Generation"),
    (0x26b5, "L40"),
    (0x26b7, "L20"),
    (0x26b8, "L40G"),
    (0x26b9, "L40S"),
    (0x26ba, "L20"),
    (0x26f5, "L40 CNX"),
    (0x27b6, "L2"),
    (0x27b8, "L4"),
    (0x2901, "B200"),
    (0x290a, "B200"),
    (0x29bc, "B100"),
    (0x2bb1, "RTX PRO 6000 Blackwell Workstation Edition"),
    (0x2bb2, "RTX PRO 6000D Blackwell Workstation Edition"),
    (0x2bb5, "RTX PRO 6000 Blackwell Server Edition"),
    (0x3182, "B300 SXM6 AC"),
    (0x31a1, "GB300 MaxQ"),
    (0x31c2, "GB300"),
    (0x31c3, "GB300-252"),
];

/// The product name of the NVIDIA GPU with PCI device id `device_id`, where the table knows it.
pub fn gpu_model(device_id: u16) -> Option<&'static str> {
    NVIDIA_PRODUCTS
        .binary_search_by_key(&device_id, |(id, _)| *id)
        .ok()
        .map(|i| NVIDIA_PRODUCTS[i].1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_issue_s_products_are_known() {
        for (id, name) in [
            (0x20b2, "A100 SXM4 80GB"),
            (0x20b5, "A100 PCIe 80GB"),
            (0x2330, "H100 SXM5 80GB"),
            (0x2331, "H100 PCIe"),
            (0x2335, "H200 SXM 141GB"),
            (0x233b, "H200 NVL"),
            (0x27b8, "L4"),
            (0x26b9, "L40S"),
            (0x2901, "B200"),
        ] {
            assert_eq!(gpu_model(id), Some(name), "{id:#06x}");
        }
    }

    #[test]
    fn chip_only_and_unknown_ids_are_not_named() {
        assert_eq!(gpu_model(0x2302), None);
        assert_eq!(gpu_model(0x22a3), None, "an NVSwitch is not a GPU");
        assert_eq!(gpu_model(0xffff), None);
    }

    #[test]
    fn the_table_is_sorted_without_duplicates() {
        assert!(NVIDIA_PRODUCTS.windows(2).all(|w| w[0].0 < w[1].0));
    }
}
