//! kubegrid-oci's integration tests, one binary with a module per area.

mod common;
mod layout;
mod registry;
