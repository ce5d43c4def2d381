//! kubegrid-plan's tests: one binary, a module per area.

mod bundle;
mod common;
mod compile;
mod playbook;
mod templates;
