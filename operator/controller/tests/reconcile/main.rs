//! Reconciler scenarios, with a scripted runner in place of the engine, against the TEST
//! STAND-IN API server (e2e/fake-apiserver) and, where they run on both (`on_both!`), also
//! with the Clusters and Nodes on a real API server (e2e/real-apiserver).

#[macro_use]
mod bed;
mod certificates;
mod common;
mod confinement;
mod leader_loss;
mod roles_column;
mod scenarios;
mod scripted;
mod scripted_certs;
mod scripted_upgrade;
mod stale_copy;
mod status_truth;
mod upgrades;
