//! kubegrid-oci's integration tests, one binary with a module per area.

mod common;
mod image;
mod layout;
mod registry;
