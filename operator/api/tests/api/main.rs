//! Tests of the public API: parsing, validation, host resolution and CRD generation.

mod common;
mod crd;
mod hosts;
mod parse;
mod registry;
mod validate;
