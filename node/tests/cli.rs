//! The `ate` binary as a user runs it: exit codes, output, and refusal of bad arguments.

// Test code: a failed setup step should fail the test loudly.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;

fn ate() -> Command {
    Command::new(env!("CARGO_BIN_EXE_ate"))
}

#[test]
fn demo_converges_and_says_so() {
    let out = ate().args(["demo", "--writes", "5"]).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("all three nodes converged"), "{stdout}");
    let digests: Vec<&str> = stdout
        .lines()
        .filter(|l| l.contains("view digest"))
        .map(|l| l.rsplit(' ').next().unwrap())
        .collect();
    assert_eq!(digests.len(), 3);
    assert!(digests.iter().all(|d| *d == digests[0]), "{digests:?}");
}

#[test]
fn bench_ingest_reports_json() {
    let out = ate()
        .args([
            "bench", "ingest", "--events", "2000", "--runs", "1", "--json",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["events"], 2000);
    assert!(v["events_per_sec_median"].as_f64().unwrap() > 0.0);
    assert!(v["replica_heap_bytes"].as_u64().unwrap() > v["body_bytes"].as_u64().unwrap());
}

#[test]
fn bad_arguments_fail_with_a_clear_message() {
    let out = ate()
        .args(["bench", "ingest", "--events", "0"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("must be positive"), "{err}");
    let out = ate().args(["frobnicate"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn help_teaches_with_examples() {
    let out = ate().args(["bench", "ingest", "--help"]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("Example"), "{text}");
}
