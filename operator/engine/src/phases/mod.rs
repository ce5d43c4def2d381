//! The phases of an operation. Each is a barrier: every host finishes it (or fails) before the
//! next begins. Within a phase, hosts run concurrently up to `--parallel`.

mod facts;
pub(crate) mod fan_out;
mod playbook;
mod preflight;
mod reboot;
pub mod runtimes;
pub mod versions;

pub use facts::Facts;
pub(crate) use playbook::compile_phase;
pub use playbook::{PlaybookPhase, compile_all};
pub use preflight::Preflight;
pub use reboot::RebootPhase;

use crate::{error::Error, operation::Run};

/// A phase of an operation.
pub trait Phase {
    /// Its name, as progress and the journal show it.
    fn name(&self) -> &str;
    /// Runs it over the hosts still standing in `run`.
    fn run(&self, run: &mut Run) -> impl Future<Output = Result<(), Error>> + Send;
}
