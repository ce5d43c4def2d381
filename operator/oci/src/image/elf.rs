//! The checks a binary must pass before it goes into a minimal image: an ELF executable for
//! the image's architecture that needs no dynamic loader, since the image has no libraries.

use std::path::Path;

use object::{
    Architecture, Endianness, Object as _, elf,
    read::elf::{ElfFile64, ProgramHeader as _},
};

use super::ImageArch;
use crate::error::{Error, Result};

/// Hint for a binary that needs shared libraries.
const STATIC_HINT: &str = "build it with the C library linked in: RUSTFLAGS='-C target-feature=+crt-static' cargo build --release --target x86_64-unknown-linux-gnu -p kubegrid (docs/operator.md, \"Building the operator image\")";

/// Checks `bytes` (the file at `path`) is a statically linked 64-bit ELF executable for `arch`.
pub(super) fn check_binary(arch: ImageArch, path: &Path, bytes: &[u8]) -> Result<()> {
    let unfit = |problem: String, hint: &str| Error::UnfitImageBinary {
        arch: arch.to_string(),
        path: path.to_path_buf(),
        problem,
        hint: hint.to_owned(),
    };
    let file = ElfFile64::<Endianness>::parse(bytes).map_err(|e| {
        unfit(
            format!("it is not a 64-bit ELF executable ({e})"),
            "pass the kubegrid binary cargo built, not a script or an archive",
        )
    })?;
    let seen = match file.architecture() {
        Architecture::X86_64 => Some(ImageArch::Amd64),
        Architecture::Aarch64 => Some(ImageArch::Arm64),
        _ => None,
    };
    if seen != Some(arch) {
        let seen = seen.map_or_else(|| format!("{:?}", file.architecture()), |a| a.to_string());
        return Err(unfit(
            format!("it is built for {seen}, expected {arch}"),
            "give each binary under the architecture it was built for",
        ));
    }
    let endian = file.endian();
    // A PT_INTERP segment names the dynamic loader the kernel must start first; a static
    // (or static-pie) executable has none.
    let interpreter = file
        .elf_program_headers()
        .iter()
        .find(|ph| ph.p_type(endian) == elf::PT_INTERP);
    if let Some(ph) = interpreter {
        let loader = match ph.interpreter(endian, bytes) {
            Ok(Some(path)) => String::from_utf8_lossy(path).into_owned(),
            _ => "an unreadable path".to_owned(),
        };
        return Err(unfit(
            format!(
                "it is dynamically linked (it asks for the loader {loader}), and the image holds no shared libraries"
            ),
            STATIC_HINT,
        ));
    }
    Ok(())
}
