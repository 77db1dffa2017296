//! Quick start: create a chain, store a record, commit it, read it back, query.
//!
//! `cargo run --example quickstart`

use ate::prelude::*;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // A key would normally come from `ate key new` (OS randomness); a fixed seed keeps the
    // example reproducible.
    let root = SecretKey::from_seed([1; 32]);
    let genesis_event = genesis("quickstart", &root, &[], Default::default(), 1, 0);
    let mut replica = Replica::new(&genesis_event.encode(), Config::default())?;
    println!("chain {}", replica.chain());

    // Store a record: build a signed event on top of the replica's heads and commit it.
    let writer = Writer::new(root);
    let event = writer.put_json(
        &replica,
        "users/alice",
        &serde_json::json!({"name": "Alice", "age": 30}),
        0,
    );
    let outputs = replica.handle(0, Input::local(event));
    let accepted = outputs.iter().any(|o| {
        matches!(
            o,
            Output::Verdict {
                verdict: Verdict::Valid,
                ..
            }
        )
    });
    println!("committed: {accepted}");

    // Update it, then read it back.
    let event = writer.put_json(
        &replica,
        "users/alice",
        &serde_json::json!({"name": "Alice", "age": 31}),
        0,
    );
    let _ = replica.handle(0, Input::local(event));
    let latest = replica
        .view()
        .get_latest("users/alice")
        .ok_or("record not found")?;
    println!(
        "users/alice = {} (version {}, record {})",
        latest.value.unwrap_or_default(),
        latest.seq,
        latest.record.short()
    );

    // Query the latest version of every record.
    let adults = Condition::parse("age >= 18")?;
    for v in replica
        .view()
        .list_latest(&Condition::True, &adults, None, None)
    {
        println!("adult: {} -> {}", v.key, v.value.unwrap_or_default());
    }
    Ok(())
}
