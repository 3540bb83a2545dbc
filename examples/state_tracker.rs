//! A crash-recovery state tracker: a job runner records each step it finishes, and after
//! a crash (kill -9, power loss) resumes from the last acknowledged step instead of
//! starting over or, worse, repeating a step it already did.
//!
//! Run it, kill it with Ctrl-C (or `kill -9`) at any moment, and run it again:
//! `cargo run --example state_tracker [-- DIR]` (default: `walstate-examples/tracker-store`
//! under the system's temp directory; it prints where).

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use walstate::{Options, StateMachine, Store};

const STEPS: u32 = 20;

#[derive(Debug, Default, Clone, Serialize, Deserialize)]
struct Jobs {
    /// Job id -> last step completed.
    completed: BTreeMap<String, u32>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
enum JobEvent {
    StepDone { job: String, step: u32 },
    Finished { job: String },
}

impl StateMachine for Jobs {
    type Command = JobEvent;
    type Output = ();

    fn apply(&mut self, event: &JobEvent) {
        match event {
            JobEvent::StepDone { job, step } => {
                self.completed.insert(job.clone(), *step);
            }
            JobEvent::Finished { job } => {
                self.completed.remove(job);
            }
        }
    }
}

/// Where the store goes without an argument: a fixed directory under the system's temp
/// directory (kept between runs, so a second run reopens it), never the working tree.
fn default_dir(name: &str) -> std::path::PathBuf {
    std::env::temp_dir().join("walstate-examples").join(name)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::args()
        .nth(1)
        .map_or_else(|| default_dir("tracker-store"), Into::into);
    println!("store: {}", dir.display());
    let store: Store<Jobs> = Store::open(&dir, Options::default())?;
    let report = store.recovery_report();
    println!(
        "recovered {} records (torn tail truncated: {})",
        report.records_replayed,
        report.torn_tail.is_some()
    );
    let job = "nightly-export".to_string();
    let done = store.read(|jobs| jobs.completed.get(&job).copied().unwrap_or(0))?;
    println!("{job}: resuming after step {done} of {STEPS}");
    for step in done + 1..=STEPS {
        std::thread::sleep(Duration::from_millis(200)); // the real work
        // Acknowledged means durable: after a crash we resume after this step.
        store.apply(JobEvent::StepDone {
            job: job.clone(),
            step,
        })?;
        println!("{job}: step {step} done");
    }
    store.apply(JobEvent::Finished { job: job.clone() })?;
    println!("{job}: finished");
    Ok(())
}
