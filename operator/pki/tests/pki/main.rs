//! kubegrid-pki's tests: one binary, a module per area. Chains, keys and hashes are checked
//! with the `openssl` command line as an independent implementation.

mod ca;
mod common;
mod etcd;
mod inspect;
mod kubeconfig;
mod layout;
mod leaf;
mod registry;
mod resign;
mod trust;
