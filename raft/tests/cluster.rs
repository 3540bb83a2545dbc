//! The cluster example, smaller: three node processes on loopback, 100 puts, the leader
//! SIGKILLed, 100 more, the killed node restarted and caught up (by a snapshot), every
//! acknowledged put on all three. The example checks all of it and exits 0 only then.

use std::path::PathBuf;
use std::process::Command;

/// The example's binary, which `cargo test` builds beside the test binaries.
fn example_binary() -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary's path");
    let profile_dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target/<profile>/deps/<test>");
    profile_dir
        .join("examples")
        .join(format!("cluster{}", std::env::consts::EXE_SUFFIX))
}

#[test]
fn three_processes_lose_no_acknowledged_write_when_the_leader_is_killed() {
    let binary = example_binary();
    assert!(
        binary.exists(),
        "{} is missing: run through `cargo test -p walstate-raft`, which builds examples",
        binary.display()
    );
    let output = Command::new(&binary)
        .arg("100")
        .output()
        .expect("run the example");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "the cluster example failed ({}):\n{stdout}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        stdout.contains("all 200 acknowledged puts are on all 3 nodes"),
        "{stdout}"
    );
}
