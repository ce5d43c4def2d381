//! The task modules, one per file. Each takes its arguments and a [`Ctx`], computes the
//! difference between the host and the arguments, and in check mode stops there.

mod context;

pub mod archive;
pub mod binary;
pub mod certificates;
pub mod command;
mod deb_order;
pub mod file;
pub mod kernel_modules;
pub mod packages;
pub mod swap_off;
pub mod sysctl;
pub mod systemd_unit;

pub use self::context::{Ctx, Outcome, require_blob_name};
