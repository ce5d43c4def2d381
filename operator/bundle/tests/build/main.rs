//! `bundle build` end to end against a loopback upstream (tests/server), plus the sources
//! model, pack/unpack and the version 2 manifest. Generated text is compared with golden
//! files under tests/golden/ (regenerate with UPDATE_GOLDEN=1).

#[path = "../server/mod.rs"]
mod server;

mod charts;
mod debs;
mod fetching;
mod fixtures;
mod manifest;
mod packing;
mod rootfs_debs;
mod sources;
mod whole_files;

use std::path::Path;

/// Compares `actual` with tests/golden/`name`, or rewrites it under UPDATE_GOLDEN=1.
pub fn golden(name: &str, actual: &str) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(name);
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, actual).unwrap();
    }
    let expected = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e}; run with UPDATE_GOLDEN=1", path.display()));
    assert_eq!(actual, expected, "{} differs", path.display());
}
