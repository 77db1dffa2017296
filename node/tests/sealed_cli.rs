//! Sealed values, read keys and root rotation through the CLI only, against one real
//! `ate node run`: a rotatable chain, a share, a sealed put that its reader opens and others
//! see as sealed, an unshare that closes new values but not old ones, a rotation that follows
//! the commitment (and one that does not), and key files or arguments that are garbage.

// Test code: a failed setup step should fail the test loudly.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::process::Output;

use common::*;

const API: &str = "127.0.0.1:14271";

/// Runs `ate ARGS --api API`.
fn run(args: &[&str]) -> Output {
    let mut all = args.to_vec();
    all.extend(["--api", API]);
    ate(None, &all)
}

/// Runs it and expects success: its stdout.
fn yes(args: &[&str]) -> String {
    ok(&run(args))
}

/// Runs it and expects a clean failure: its stderr (no panic, exit code 1).
fn no(args: &[&str]) -> String {
    failed(run(args))
}

/// Expects a clean failure: its stderr.
fn failed(out: Output) -> String {
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(out.status.code(), Some(1), "should fail cleanly: {err}");
    assert!(!err.contains("panicked"), "{err}");
    err
}

fn show(file: &str, part: &str) -> String {
    ok(&ate(None, &["key", "show", file, part]))
}

fn private_file(path: &Path, bytes: &[u8]) {
    std::fs::write(path, bytes).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
}

#[test]
fn share_seal_unshare_and_rotate_through_the_cli() {
    let dir = tempfile::tempdir().unwrap();
    let _node = loopback_node(API, &[], &dir.path().join("node.log"));
    let file = |n: &str| dir.path().join(n).to_str().unwrap().to_string();
    let [root, next, after, bob, eve] =
        ["root.key", "next.key", "after.key", "bob.key", "eve.key"].map(file);
    for k in [&root, &next, &after, &bob, &eve] {
        ok(&ate(None, &["key", "new", k]));
    }
    // `key show` prints the three public forms; the labelled form matches the bare ones.
    let shown = ok(&ate(None, &["key", "show", &bob]));
    let bob_pk = show(&bob, "--public");
    let bob_reader = show(&bob, "--reader");
    assert!(bob_pk.starts_with("pk") && bob_reader.starts_with("reader"));
    assert!(shown.contains(&bob_pk) && shown.contains(&bob_reader));
    assert!(shown.contains(&show(&bob, "--next")));

    let chain = yes(&[
        "chain",
        "new",
        "docs",
        "--key",
        &root,
        "--next",
        &show(&next, "--next"),
    ]);
    let read = |record: &str, extra: &[&str]| {
        let mut args = vec!["get", chain.as_str(), record];
        args.extend(extra);
        yes(&args)
    };

    // Share, seal, open: bob reads the plaintext; eve and a keyless reader see "sealed".
    no(&[
        "put",
        &chain,
        "docs/plan",
        r#"{"v": 1}"#,
        "--seal",
        "docs/",
        "--key",
        &root,
    ])
    .contains("has no read key yet")
    .then_some(())
    .expect("sealing before any share says how to start");
    yes(&[
        "share",
        &chain,
        &bob_reader,
        "--scope",
        "docs/",
        "--key",
        &root,
    ]);
    yes(&[
        "put",
        &chain,
        "docs/plan",
        r#"{"v": 1}"#,
        "--seal",
        "docs/",
        "--key",
        &root,
    ]);
    yes(&[
        "put",
        &chain,
        "docs/open",
        r#"{"plain": true}"#,
        "--key",
        &root,
    ]);
    assert_eq!(read("docs/plan", &["--key", &bob]), r#"{"v":1}"#);
    assert_eq!(
        read("docs/plan", &["--key", &root]),
        r#"{"v":1}"#,
        "the admin shared it with itself"
    );
    for extra in [&["--key", eve.as_str()][..], &[]] {
        assert_eq!(read("docs/plan", extra), "(sealed: scope `docs/` epoch 0)");
    }
    let as_bob = yes(&[
        "list", &chain, "--prefix", "docs/", "--latest", "--order", "$key", "--json", "--key", &bob,
    ]);
    let as_eve = yes(&[
        "list", &chain, "--prefix", "docs/", "--latest", "--order", "$key", "--json", "--key", &eve,
    ]);
    let values = |text: &str| -> Vec<(serde_json::Value, bool)> {
        let vs: Vec<serde_json::Value> = serde_json::from_str(text).unwrap();
        vs.iter()
            .map(|v| {
                (
                    v["value"].clone(),
                    v["sealed"]["opened"].as_bool().unwrap_or(true),
                )
            })
            .collect()
    };
    assert_eq!(
        values(&as_bob),
        [
            (serde_json::json!({"plain": true}), true),
            (serde_json::json!({"v": 1}), true)
        ]
    );
    assert_eq!(
        values(&as_eve),
        [
            (serde_json::json!({"plain": true}), true),
            (serde_json::Value::Null, false)
        ]
    );
    // A reader without a write grant cannot seal into the scope: the node refuses it.
    assert!(
        no(&[
            "put", &chain, "docs/x", "1", "--seal", "docs/", "--key", &bob
        ])
        .contains("holds no Write right")
    );

    // Unshare: a new epoch without bob. He keeps version 0, cannot open version 1.
    yes(&[
        "unshare", &chain, &bob_pk, "--scope", "docs/", "--key", &root,
    ]);
    yes(&[
        "put",
        &chain,
        "docs/plan",
        r#"{"v": 2}"#,
        "--seal",
        "docs/",
        "--key",
        &root,
    ]);
    assert_eq!(read("docs/plan", &["--key", &root]), r#"{"v":2}"#);
    assert_eq!(
        read("docs/plan", &["--key", &bob]),
        "(sealed: scope `docs/` epoch 1)"
    );
    assert_eq!(
        read("docs/plan", &["--version", "0", "--key", &bob]),
        r#"{"v":1}"#
    );
    let history = yes(&["history", &chain, "docs/plan", "--key", &bob]);
    assert!(
        history.contains(r#"{"v":1}"#) && history.contains("(sealed: scope `docs/` epoch 1)"),
        "{history}"
    );
    assert!(
        no(&[
            "unshare", &chain, &bob_pk, "--scope", "docs/", "--key", &root
        ])
        .contains("is not a reader")
    );

    // Rotation: a key other than the committed one is refused, with the reason.
    let err = no(&[
        "rotate",
        &chain,
        "--key",
        &root,
        "--to",
        &eve,
        "--next",
        &show(&after, "--next"),
    ]);
    assert!(
        err.contains("does not match the root's commitment"),
        "{err}"
    );
    assert!(
        err.contains("is not the key this root committed to"),
        "{err}"
    );
    yes(&[
        "rotate",
        &chain,
        "--key",
        &root,
        "--to",
        &next,
        "--next",
        &show(&after, "--next"),
    ]);
    // The old root is refused for writes; the new one writes, and can share the scope.
    assert!(no(&["put", &chain, "k", "1", "--key", &root]).contains("holds no Write right"));
    yes(&["put", &chain, "k", "2", "--key", &next]);
    assert_eq!(read("k", &[]), "2");
    let old_root_again = no(&[
        "rotate",
        &chain,
        "--key",
        &root,
        "--to",
        &next,
        "--next",
        &show(&after, "--next"),
    ]);
    assert!(
        old_root_again.contains("not a current root"),
        "{old_root_again}"
    );

    // Garbage in: clear errors, exit code 1 (2 for arguments clap refuses), never a panic.
    let bad = dir.path().join("bad.key");
    let text = std::fs::read_to_string(&bob).unwrap();
    let cases: [(Vec<u8>, &str); 5] = [
        (b"hello".to_vec(), "line 1 is not a signing key"),
        (
            text.as_bytes()[..text.len() - 20].to_vec(),
            "line 2 is not a reader key",
        ),
        (vec![0xff; 100], "not text"),
        (vec![b'a'; 10_000], "too large for a key file"),
        (format!("{text}{text}").into_bytes(), "line 3 is unexpected"),
    ];
    for (bytes, want) in cases {
        let _ = std::fs::remove_file(&bad);
        private_file(&bad, &bytes);
        let bad = bad.to_str().unwrap();
        for args in [
            &[
                "put",
                &chain,
                "docs/plan",
                "3",
                "--seal",
                "docs/",
                "--key",
                bad,
            ][..],
            &["get", &chain, "docs/plan", "--key", bad],
        ] {
            let err = no(args);
            let shown = failed(ate(None, &["key", "show", bad]));
            assert!(shown.contains(want), "{shown}");
            assert!(
                err.contains("is not an ate key file") && err.contains(want),
                "{err}"
            );
            assert!(
                !err.contains(&text[2..20]),
                "no key material in errors: {err}"
            );
        }
    }
    let missing = file("missing.key");
    assert!(no(&["get", &chain, "docs/plan", "--key", &missing]).contains("cannot read key file"));
    for args in [
        &[
            "share",
            &chain,
            "readerxyz",
            "--scope",
            "docs/",
            "--key",
            &next,
        ][..],
        &["share", &chain, &bob_pk, "--scope", "docs/", "--key", &next],
        &[
            "rotate", &chain, "--key", &next, "--to", &after, "--next", "nextabc",
        ],
        &["chain", "new", "x", "--key", &root, "--next", &bob_pk],
    ] {
        let out = run(args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(
            err.contains("ate key show"),
            "the error says where the value comes from: {err}"
        );
    }
    // A key file from before sealed values (signing line only) still signs, but cannot read.
    let old = dir.path().join("old.key");
    private_file(&old, text.lines().next().unwrap().as_bytes());
    let old = old.to_str().unwrap();
    assert!(no(&["get", &chain, "docs/plan", "--key", old]).contains("has no reader (ML-KEM) key"));
    assert!(api_up(API), "the node still serves");
}

#[test]
fn read_key_endpoints_refuse_bad_requests_with_json_errors() {
    let dir = tempfile::tempdir().unwrap();
    let api = "127.0.0.1:14272";
    let _node = loopback_node(api, &[], &dir.path().join("node.log"));
    let key = dir.path().join("root.key");
    let key = key.to_str().unwrap();
    ok(&ate(None, &["key", "new", key]));
    let chain = ok(&ate(
        None,
        &["chain", "new", "x", "--key", key, "--api", api],
    ));
    let get = |path: &str| {
        let mut r = agent()
            .get(&format!("http://{api}/v1/chains/{chain}/{path}"))
            .call()
            .unwrap();
        let body: serde_json::Value =
            serde_json::from_str(&r.body_mut().read_to_string().unwrap()).unwrap();
        (r.status().as_u16(), body)
    };
    for (path, want) in [
        ("read-epoch", "missing `scope`"),
        ("shares", "missing `reader`"),
        ("shares?reader=bob", "reader: expected a public key"),
    ] {
        let (code, body) = get(path);
        assert_eq!(code, 400, "{path}: {body}");
        assert!(
            body["error"].as_str().unwrap().contains(want),
            "{path}: {body}"
        );
    }
    let (code, body) = get("read-epoch?scope=docs/");
    assert_eq!(code, 200);
    assert_eq!(body["epoch"], serde_json::Value::Null);
    let pk = ok(&ate(None, &["key", "show", key, "--public"]));
    let (code, body) = get(&format!("shares?reader={pk}"));
    assert_eq!((code, body["events"].as_array().unwrap().len()), (200, 0));
}
