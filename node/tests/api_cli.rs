//! The CLI against one real `ate node run`: writers sign locally; a writer without a grant
//! and a revoked writer are refused with a clear error; bad requests get clear 4xx errors and
//! the node keeps serving.

// Test code: a failed setup step should fail the test loudly.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::*;

fn http(api: &str, method: &str, path: &str, body: Option<&str>) -> (u16, String) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let url = format!("http://{api}{path}");
    let resp = match (method, body) {
        ("POST", Some(b)) => agent
            .post(&url)
            .header("content-type", "application/json")
            .send(b),
        _ => agent.get(&url).call(),
    };
    let mut resp = resp.expect("http");
    let code = resp.status().as_u16();
    (code, resp.body_mut().read_to_string().unwrap_or_default())
}

#[test]
fn cli_round_trip_refusals_and_bad_requests() {
    let dir = tempfile::tempdir().unwrap();
    let api = "127.0.0.1:14191";
    let _node = node(
        None,
        &[
            "--listen",
            "/ip4/127.0.0.1/tcp/0",
            "--api",
            api,
            "--no-mdns",
        ],
        &dir.path().join("node.log"),
    );
    wait_for("the API", Duration::from_secs(20), || {
        ate(None, &["status", "--api", api])
            .status
            .success()
            .then_some(())
    });
    let key = |n: &str| dir.path().join(n).to_str().unwrap().to_string();
    let root = key("root.key");
    let bob = key("bob.key");
    ok(&ate(None, &["key", "new", &root]));
    let bob_pk = ok(&ate(None, &["key", "new", &bob]));
    let chain = ok(&ate(
        None,
        &["chain", "new", "cli", "--key", &root, "--api", api],
    ));

    ok(&ate(
        None,
        &[
            "put",
            &chain,
            "users/alice",
            r#"{"age": 30}"#,
            "--key",
            &root,
            "--api",
            api,
        ],
    ));
    ok(&ate(
        None,
        &[
            "put",
            &chain,
            "users/alice",
            r#"{"age": 31}"#,
            "--key",
            &root,
            "--api",
            api,
        ],
    ));
    assert_eq!(
        ok(&ate(None, &["get", &chain, "users/alice", "--api", api])),
        r#"{"age":31}"#
    );
    assert_eq!(
        ok(&ate(
            None,
            &["get", &chain, "users/alice", "--version", "0", "--api", api]
        )),
        r#"{"age":30}"#
    );
    let listed = ok(&ate(
        None,
        &[
            "list",
            &chain,
            "--where",
            "age >= 31",
            "--latest",
            "--json",
            "--api",
            api,
        ],
    ));
    let v: serde_json::Value = serde_json::from_str(&listed).unwrap();
    assert_eq!(v.as_array().unwrap().len(), 1);
    let hist = ok(&ate(
        None,
        &["history", &chain, "users/alice", "--json", "--api", api],
    ));
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&hist)
            .unwrap()
            .as_array()
            .unwrap()
            .len(),
        2
    );

    // Bob has no grant: refused, with the reason.
    let out = ate(
        None,
        &["put", &chain, "users/bob", "1", "--key", &bob, "--api", api],
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("holds no Write right"), "{err}");
    // Granted: accepted. Revoked: refused again.
    ok(&ate(
        None,
        &[
            "grant",
            &chain,
            &bob_pk,
            "--scope",
            "users/bob",
            "--key",
            &root,
            "--api",
            api,
        ],
    ));
    ok(&ate(
        None,
        &["put", &chain, "users/bob", "1", "--key", &bob, "--api", api],
    ));
    let out = ate(
        None,
        &[
            "put",
            &chain,
            "users/alice",
            "1",
            "--key",
            &bob,
            "--api",
            api,
        ],
    );
    assert!(!out.status.success(), "outside the granted scope");
    ok(&ate(
        None,
        &[
            "revoke", &chain, &bob_pk, "--scope", "", "--key", &root, "--api", api,
        ],
    ));
    let out = ate(
        None,
        &["put", &chain, "users/bob", "2", "--key", &bob, "--api", api],
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("holds no Write right"));
    ok(&ate(
        None,
        &["delete", &chain, "users/bob", "--key", &root, "--api", api],
    ));
    assert_eq!(
        ok(&ate(None, &["get", &chain, "users/bob", "--api", api])),
        "(deleted)"
    );

    // Bad requests: clear errors, node keeps serving.
    let (code, body) = http(
        api,
        "POST",
        &format!("/v1/chains/{chain}/events"),
        Some("{not json"),
    );
    assert!((400..500).contains(&code), "{code} {body}");
    // Every error is `{"error": "…"}`, axum's own rejections included.
    let error = |body: &str| -> String {
        let v: serde_json::Value = serde_json::from_str(body).expect("a JSON error");
        v["error"].as_str().expect("an error text").to_string()
    };
    assert!(!error(&body).is_empty(), "{body}");
    // GET on the chain's API.
    let get = |rest: &str| http(api, "GET", &format!("/v1/chains/{chain}/{rest}"), None);
    let (code, body) = http(api, "GET", "/v1/nope", None);
    assert_eq!(code, 404, "{body}");
    assert_eq!(error(&body), "Not Found");
    let (code, body) = get("select?limit=many");
    assert_eq!(code, 400, "{body}");
    assert!(error(&body).contains("limit"), "{body}");
    let (code, body) = http(
        api,
        "POST",
        &format!("/v1/chains/{chain}/events"),
        Some(r#"{"events": ["zz"]}"#),
    );
    assert_eq!(code, 422, "{body}");
    let (code, body) = http(api, "GET", "/v1/chains/chainnope/latest?key=x", None);
    assert_eq!(code, 400, "{body}");
    assert!(body.contains("chain id"), "{body}");
    let other = "chainaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    let (code, body) = http(
        api,
        "GET",
        &format!("/v1/chains/{other}/latest?key=x"),
        None,
    );
    assert_eq!(code, 404, "{body}");
    let (code, body) = get("select?where=(((");
    assert_eq!(code, 400, "{body}");
    // Answers are bounded: a limit over the most one answer holds is refused, a small one
    // applies.
    let (code, body) = get("select?limit=10001");
    assert_eq!(code, 400, "{body}");
    assert!(body.contains("over the most one answer holds"), "{body}");
    let (code, body) = get("list-latest?limit=1");
    assert_eq!(code, 200, "{body}");
    let rows: Vec<serde_json::Value> = serde_json::from_str(&body).unwrap();
    assert_eq!(rows.len(), 1, "{body}");
    // users/bob has 2 versions (bob's put, the root's delete): history pages with limit.
    let history = |q: &str| -> Vec<serde_json::Value> {
        let (code, body) = get(&format!("history?key=users/bob{q}"));
        assert_eq!(code, 200, "{body}");
        serde_json::from_str(&body).unwrap()
    };
    assert_eq!(history("").len(), 2);
    let rows = history("&limit=1");
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["seq"], 0, "oldest first: {rows:?}");
    // A body over the limit (3 MiB of a 2 MiB event's hex, and then some) is refused.
    let huge = format!(r#"{{"events": ["{}"]}}"#, "00".repeat(1_600_000));
    let (code, body) = http(
        api,
        "POST",
        &format!("/v1/chains/{chain}/events"),
        Some(&huge),
    );
    assert_eq!(code, 413, "{body}");
    assert!(error(&body).contains("length limit"), "{body}");
    let (code, metrics) = http(api, "GET", "/metrics", None);
    assert_eq!(code, 200);
    assert!(metrics.contains("ate_events_rejected_total"), "{metrics}");
    // A key file others can read is refused.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&bob, std::fs::Permissions::from_mode(0o644)).unwrap();
        let out = ate(
            None,
            &["put", &chain, "x", "1", "--key", &bob, "--api", api],
        );
        assert!(String::from_utf8_lossy(&out.stderr).contains("chmod 600"));
    }
    assert!(
        ate(None, &["status", "--api", api]).status.success(),
        "the node still serves"
    );
}
