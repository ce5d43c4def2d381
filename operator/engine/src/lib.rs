//! kubegrid's install engine: validate, gather facts, preflight, compile, fan out over SSH.
//!
//! The CLI and the operator share this crate: they build a [`operation::Request`] from the
//! spec and hand it to [`operation::execute`], which journals everything it does.

pub mod agent;
pub mod bundle_check;
pub mod certs;
pub mod distribute;
pub mod error;
pub mod images;
pub mod kubernetes;
pub mod membership;
pub mod operation;
pub mod phases;
pub mod preflight;
pub mod progress;
pub mod registry;
pub mod registry_push;
pub mod session;
pub mod spec;
pub mod ssh;
pub mod upgrade;

pub use error::Error;
