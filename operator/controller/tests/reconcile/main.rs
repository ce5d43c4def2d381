//! Reconciler scenarios against the TEST STAND-IN API server (e2e/fake-apiserver), with a
//! scripted runner in place of the engine.

mod common;
mod confinement;
mod leader_loss;
mod roles_column;
mod scenarios;
mod scripted;
mod status_truth;
