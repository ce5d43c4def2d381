//! Lab hosts for kubegrid: throwaway but real Linux hosts on one machine.
//!
//! Each host is a systemd-nspawn container running real systemd and sshd, booted from a
//! cached debootstrap'd Debian rootfs through its own overlay, in its own network namespace
//! on a private bridge with no default route. kubegrid's own tests run on them, and users
//! get the same thing to try kubegrid without hardware.
//!
//! The entry point is [`Lab`]; the `kubegrid lab` commands are thin wrappers around it.

mod base;
mod cgroup;
mod error;
mod exec;
mod host;
mod identity;
mod lab;
mod mounts;
mod net;
mod nspawn;
mod rate;
mod ready;
mod shape;
mod spec;
mod state;
mod view;

pub use base::{DEFAULT_MIRROR, PACKAGES, RELEASES, Recipe, SUITE};
pub use error::{Error, ErrorKind, Result};
pub use exec::tail;
pub use identity::SUDO_USER;
pub use lab::{DEFAULT_SUBNET, HostReady, Lab, LabConfig, Selection, UpOptions};
pub use mounts::mounted_under;
pub use rate::LinkRate;
pub use shape::Shaped;
pub use spec::KUBERNETES_VERSION;
pub use state::{HostRecord, LabState, Layout, RootfsMode};
pub use view::{HostView, Listing};
