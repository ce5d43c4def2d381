//! Tests of the public API: parsing, validation (on create and on update), host resolution,
//! CRD generation and the CRDs' CEL rules.

mod cel_eval;
mod common;
mod confine;
mod crd;
mod hosts;
mod inputs;
mod parse;
mod real_kubectl;
mod real_samples;
mod real_server;
mod registry;
mod schema_rules;
mod served;
mod update;
mod validate;
