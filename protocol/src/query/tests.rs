//! Tests of conditions, orderings and the three-step query.
use super::*;
use proptest::prelude::*;
use serde_json::json;

fn row<'a>(id: &'a str, seq: u64, clock: u64, value: Option<&'a Value>) -> Row<'a> {
    let (key, record, author, time_ms) = ("users/ann", "evrecord", "pkauthor", 1000 + clock);
    Row {
        key,
        record,
        id,
        author,
        seq,
        clock,
        time_ms,
        deleted: value.is_none(),
        value,
    }
}

fn parse(text: &str) -> Condition {
    Condition::parse(text).unwrap()
}

fn err(text: &str) -> String {
    Condition::parse(text).unwrap_err().to_string()
}

fn ids<'a>(rows: &[Row<'a>]) -> Vec<&'a str> {
    rows.iter().map(|r| r.id).collect()
}

/// Checks that every `;`- or line-separated condition in `block` is `expected` on `row`.
fn check_lines(block: &str, row: &Row<'_>, expected: bool) {
    for line in block
        .split([';', '\n'])
        .map(str::trim)
        .filter(|l| !l.is_empty())
    {
        assert_eq!(parse(line).matches(row), expected, "{line}");
    }
}

/// Found by the `query_text` fuzz target: a number's printed form must parse back to the same
/// number (serde_json's `float_roundtrip`; its default float parsing may be off by one ulp).
#[test]
fn large_numbers_print_and_parse_back_the_same() {
    let text = format!("9 < 9{}", "8".repeat(40));
    let shown = parse(&text).to_string();
    assert_eq!(parse(&shown).to_string(), shown, "{text} -> {shown}");
    for x in [
        "0.1",
        "1e300",
        "2.2250738585072014e-308",
        "123456789.123456789",
    ] {
        let v: serde_json::Value = serde_json::from_str(x).unwrap();
        let again: serde_json::Value = serde_json::from_str(&v.to_string()).unwrap();
        assert_eq!(again, v, "{x}");
    }
}

#[test]
fn parse_round_trips_and_precedence() {
    let texts = r#"
        status = "open" and (size >= 10 or $key ^= "users/") and not tags.0 in ["x", 1]
        a = 1 or b = 2 and not c != 3
        (a = 1 or b = 2) and c < 3.5 and ((d = 1 and e = 2) or f = 3)
        not (a = 1 and b = {"x":[1,null]}) and not not c = 1
        meta."content-type" = "t\"" and "not" = true and . = null and x."" > -1e3 and "-a" = 1
        TRUE and false or $deleted == false and $time_ms <= 5 and a."$key" ^= "é""#;
    for text in texts.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let shown = parse(text).to_string();
        assert_eq!(parse(&shown), parse(text), "{text} -> {shown}");
    }
    let p = |s: &str| Path::Value(s.split('.').map(str::to_owned).collect());
    let eq = |s: &str, v: i32| Condition::Eq(p(s), json!(v));
    let not_c = Condition::Not(Box::new(eq("c", 3)));
    let expected = Condition::Or(vec![eq("a", 1), Condition::And(vec![eq("b", 2), not_c])]);
    assert_eq!(parse("a = 1 OR b = 2 And NOT c = 3"), expected);
    assert_eq!(expected.to_string(), "a = 1 or (b = 2 and not c = 3)");
    assert_eq!(
        (parse("(a == 1)"), parse(" ")),
        (eq("a", 1), Condition::True)
    );
    assert_eq!(parse(".a.b=1"), eq("a.b", 1));
    let c = parse(r#"a.0 in [1, "x"] and $seq^="1""#);
    assert_eq!(c.to_string(), r#"a.0 in [1,"x"] and $seq ^= "1""#);
    assert_eq!((c.complexity(), c.depth()), (3, 2));
    for text in ["-$clock", "size", "-a.b", ".", "\"-x\"", "-"] {
        let o = Order::parse(text).unwrap();
        assert_eq!(Order::parse(&o.to_string()).unwrap(), o);
    }
    assert_eq!(
        Order::parse("-size").unwrap(),
        Order {
            by: p("size"),
            descending: true
        }
    );
    assert_eq!(Path::parse("").unwrap(), Path::Value(vec![]));
    assert_eq!(
        Path::parse(" $time_ms ").unwrap(),
        Path::Meta(MetaField::TimeMs)
    );
}

#[test]
fn operators_types_and_absent_paths() {
    let v = json!({"n": 5, "f": 2.5, "s": "hello", "b": true, "z": null,
        "arr": [1, {"x": "y"}], "o": {"k": 1}});
    let r = row("eva", 0, 1, Some(&v));
    let yes = r#"
        n = 5; n == 5.0; n != 6; n < 6; n <= 5; n > 4.5; n >= 5; f < 3; s = "hello"
        s < "help"; s >= "hello"; s ^= "hel"; s ^= ""; b = true; z = null; arr.0 = 1
        arr.1.x = "y"; arr = [1.0, {"x": "y"}]; o = {"k": 1}; n in [1, 5]
        s in ["hello"]; missing != 1; n.x != 1; arr.9 != 1; not missing = 1"#;
    check_lines(yes, &r, true);
    let no = r#"
        n = "5"; n < "6"; s < 6; s > 1; b > false; z < 1; missing = 1; missing < 1
        missing >= 1; missing in [null]; missing ^= ""; n ^= "5"; n in []; arr.x = 1
        arr.01x = 1; arr = [1]; o = {"k": 1, "j": 2}; n != 5.0; false; s.0 = "h""#;
    check_lines(no, &r, false);
    assert!(Condition::And(vec![]).matches(&r) && !Condition::Or(vec![]).matches(&r));
}

#[test]
fn numbers_compare_by_value_exactly() {
    let v = json!({"i": 1, "big": 9_007_199_254_740_993u64, "neg": -1, "max": u64::MAX});
    let r = row("eva", 0, 1, Some(&v));
    let yes = "i = 1.0 and i = 1 and i in [1.0] and neg = -1.0 and neg < 0
        big != 9007199254740992.0 and big > 9007199254740992.0 and big = 9007199254740993
        max > 1e19 and max < 1.9e19 and max > -1 and i < 1.0000001 and i > 0.9999999
        i > -1e300 and i < 1e300 and max = 18446744073709551615";
    check_lines(yes, &r, true);
}

#[test]
fn metadata_fields_and_tombstones() {
    let v = json!({"a": 1});
    let r = row("evid", 3, 7, Some(&v));
    let yes = r#"$key = "users/ann" and $key ^= "users/" and $record = "evrecord"
        $id = "evid" and $author = "pkauthor" and $seq = 3 and $clock >= 7
        $time_ms = 1007 and $deleted = false and a = 1"#;
    check_lines(yes, &r, true);
    check_lines("$seq = \"3\"\n$deleted = 0\n$clock < 7", &r, false);
    let tombstone = row("evid", 4, 8, None);
    check_lines("a != 1\n$deleted = true\n$seq = 4", &tombstone, true);
    check_lines(". = null\na = 1\n. != 1 and a = 1", &tombstone, false);
}

#[test]
fn list_latest_filters_after_reducing_unlike_select() {
    let (open, closed) = (json!({"status": "open"}), json!({"status": "closed"}));
    let versions = vec![
        row("evb", 1, 5, Some(&closed)),
        row("eva", 0, 2, Some(&open)),
    ];
    let records = || vec![versions.clone()];
    let cond = parse(r#"status = "open""#);
    assert!(list_latest(records(), &Condition::True, &cond, None, None).is_empty());
    assert_eq!(
        select(versions.clone(), &cond, None, None),
        vec![versions[1]]
    );
    // The pre_filter restricts which versions may be latest: "as of clock 3" sees v0 only.
    let as_of = parse("$clock <= 3");
    assert_eq!(
        list_latest(records(), &as_of, &cond, None, None),
        vec![versions[1]]
    );
    let all = list_latest(records(), &Condition::True, &Condition::True, None, None);
    assert_eq!(all, vec![versions[0]]);
}

#[test]
fn list_latest_picks_highest_seq_clock_id_and_skips_deleted() {
    let (a, b) = (json!({"n": 1}), json!({"n": 2}));
    // Seq wins over clock; a fork at one seq goes to the higher clock, then id (base32).
    let rec1 = vec![row("evz", 2, 3, Some(&a)), row("evx", 1, 9, Some(&b))];
    let rec2 = vec![
        row("evq", 1, 4, Some(&a)),
        row("ev2", 1, 4, Some(&a)),
        row("evp", 1, 4, Some(&b)),
    ];
    let rec3 = vec![row("evc", 0, 1, Some(&a)), row("evd", 1, 2, None)];
    let records = vec![rec1, rec2, rec3.clone()];
    let out = list_latest(records, &Condition::True, &Condition::True, None, None);
    assert_eq!(ids(&out), ["evz", "ev2"]);
    // A value pre_filter never passes a tombstone, so the version before the delete shows...
    let by_value = parse("n = 1");
    let out = list_latest(vec![rec3.clone()], &by_value, &Condition::True, None, None);
    assert_eq!(out, vec![rec3[0]]);
    // ...unless tombstones are let through.
    let with_deletes = parse("n = 1 or $deleted = true");
    assert!(list_latest(vec![rec3], &with_deletes, &Condition::True, None, None).is_empty());
}

#[test]
fn sorting_is_total_and_deterministic() {
    let vals = [
        json!(3),
        json!("b"),
        json!(null),
        json!([1]),
        json!({"a": 1}),
        json!(false),
    ];
    let vals = [&vals[..], &[json!(2.5), json!("a"), json!(true)]].concat();
    let names = [
        "ev7", "eva", "evb", "ev2", "evz", "evc", "evd", "eve", "evh",
    ];
    let mut rows: Vec<_> = vals
        .iter()
        .zip(names)
        .map(|(v, id)| row(id, 0, 1, Some(v)))
        .collect();
    rows.extend([row("evf", 0, 0, None), row("evg", 0, 1, Some(&vals[0]))]);
    let (asc, desc) = (Order::parse(".").unwrap(), Order::parse("-.").unwrap());
    let mut sorted = rows.clone();
    sort_and_limit(&mut sorted, Some(&asc), None);
    let expected = [
        "evf", "evb", "evc", "evh", "evd", "evg", "ev7", "eve", "eva", "ev2", "evz",
    ];
    assert_eq!(ids(&sorted), expected);
    rows.reverse();
    let mut again = rows.clone();
    sort_and_limit(&mut again, Some(&asc), Some(3));
    assert_eq!(ids(&again), expected[..3]);
    sort_and_limit(&mut rows, Some(&desc), Some(2));
    assert_eq!(ids(&rows), ["evz", "ev2"]);
    sort_and_limit(&mut again, None, Some(0));
    assert!(again.is_empty());
    sort_and_limit(&mut sorted, None, None);
    assert_eq!(ids(&sorted)[..3], ["evf", "eva", "evb"]);
    assert_eq!(ids(&sorted)[9..], ["ev2", "ev7"]);
}

#[test]
fn errors_say_what_where_and_what_is_expected() {
    let operator = r#"expected an operator (=, !=, <, <=, >, >=, ^=, in) at byte 7, found "foo""#;
    assert_eq!(err("status foo 1"), operator);
    let unterminated = "unterminated string starting at byte 4; close it with a double quote";
    assert_eq!(err(r#"a = "open"#), unterminated);
    assert!(err("a = open").starts_with(r#"invalid JSON literal "open" at byte 4"#));
    assert!(err("a = ").ends_with("expected a JSON literal at byte 4, found the end of the input"));
    assert!(
        err("a = 1 b = 2").starts_with("expected `and`, `or` or the end of the input at byte 6")
    );
    assert!(err("(a = 1").ends_with("at byte 6, found the end of the input"));
    assert!(err("$nope = 1").ends_with(r#"at byte 0, found "$nope""#));
    assert!(err("a in 1").contains("a JSON array after `in` at byte 5"));
    assert!(err("a ^= 1").contains("a string in double quotes after `^=`"));
    assert!(err("a in [1, \"]\"").contains("a closing `]` or `}` at byte 12"));
    assert!(err("a.= 1").contains("expected a path segment"));
    assert!(err("é = 1").ends_with(r#"found "é""#));
    assert!(err("= 1").starts_with("expected a condition"));
    let order = Order::parse("a b").unwrap_err().to_string();
    assert_eq!(
        order,
        r#"expected the end of the path at byte 2, found "b""#
    );
}

#[test]
fn limits_are_errors_not_crashes() {
    let too_large = |text: &str, what: &str| match Condition::parse(text) {
        Err(QueryError::TooLarge { what: w, .. }) => assert_eq!(w, what),
        other => panic!("{other:?}"),
    };
    too_large(&"(".repeat(4000), "levels of nesting");
    too_large(&"not ".repeat(1000), "levels of nesting");
    too_large(&"(".repeat(10_000), "bytes");
    too_large(&"a = 1 or ".repeat(12_000), "bytes");
    too_large(
        &vec!["a=1"; MAX_COMPARISONS + 1].join(" or "),
        "comparisons",
    );
    let ok = format!("{}a = 1{}", "(".repeat(MAX_DEPTH), ")".repeat(MAX_DEPTH));
    assert_eq!(parse(&ok).depth(), 1);
    let nested_json = format!("a = {}{}", "[".repeat(2000), "]".repeat(2000));
    assert!(matches!(
        Condition::parse(&nested_json),
        Err(QueryError::BadLiteral { .. })
    ));
}

fn small_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        (-3i64..3).prop_map(Value::from),
        (-6i32..6).prop_map(|x| Value::from(f64::from(x) / 2.0)),
        Just(json!(9_007_199_254_740_993u64)),
        Just(json!(9_007_199_254_740_992u64)),
        Just(json!(9_007_199_254_740_992.0)),
        "[ab]{0,2}".prop_map(Value::from),
    ];
    leaf.prop_recursive(2, 6, 3, |inner| {
        let object = prop::collection::btree_map("[ab]", inner.clone(), 0..3);
        prop_oneof![
            prop::collection::vec(inner, 0..3).prop_map(Value::from),
            object.prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn rows_of(parts: &[(u64, usize, Option<Value>)]) -> Vec<Row<'_>> {
    const IDS: [&str; 4] = ["eva", "evb", "ev2", "ev7"];
    parts
        .iter()
        .map(|(clock, id, v)| row(IDS[*id], 0, *clock, v.as_ref()))
        .collect()
}

fn any_parts(n: std::ops::Range<usize>) -> impl Strategy<Value = Vec<(u64, usize, Option<Value>)>> {
    prop::collection::vec((0u64..3, 0usize..4, prop::option::of(small_value())), n)
}

fn any_order() -> impl Strategy<Value = Option<Order>> {
    let a = Path::Value(vec!["a".into()]);
    let paths = prop_oneof![
        Just(Path::Value(vec![])),
        Just(Path::Meta(MetaField::Id)),
        Just(a)
    ];
    prop::option::of((paths, any::<bool>()).prop_map(|(by, descending)| Order { by, descending }))
}

proptest! {
    #[test]
    fn parse_never_panics(text in ".{0,64}") {
        let _ = Condition::parse(&text);
        let _ = Order::parse(&text);
    }

    #[test]
    fn parse_never_panics_on_token_soup(tokens in prop::collection::vec(prop_oneof![
        Just("("), Just(")"), Just(" and "), Just(" or "), Just("not "), Just("a.b"),
        Just("$key"), Just("$x"), Just(" = "), Just(" in "), Just("^="), Just("<="),
        Just("\"s\\\""), Just("\""), Just("["), Just("]"), Just("1"), Just("-2.5e"),
        Just("true"), Just("."), Just("é"), Just("{"), Just("}"), Just(","),
    ], 0..40)) {
        if let Ok(c) = Condition::parse(&tokens.concat()) {
            prop_assert_eq!(Condition::parse(&c.to_string()).ok(), Some(c));
        }
    }

    #[test]
    fn compare_rows_is_a_total_order(parts in any_parts(3..4), order in any_order()) {
        let rows = rows_of(&parts);
        let (o, a, b, c) = (order.as_ref(), &rows[0], &rows[1], &rows[2]);
        prop_assert_eq!(compare_rows(o, a, b), compare_rows(o, b, a).reverse());
        prop_assert_eq!(compare_rows(o, a, a), Ordering::Equal);
        if compare_rows(o, a, b).is_le() && compare_rows(o, b, c).is_le() {
            prop_assert!(compare_rows(o, a, c).is_le());
        }
        if compare_rows(o, a, b).is_eq() {
            prop_assert_eq!((a.clock, a.id), (b.clock, b.id));
        }
    }

    #[test]
    fn sorting_does_not_depend_on_input_order(
        parts in any_parts(0..12), order in any_order(), limit in prop::option::of(0usize..6),
    ) {
        let mut rows = rows_of(&parts);
        let mut reversed: Vec<_> = rows.iter().rev().copied().collect();
        sort_and_limit(&mut rows, order.as_ref(), limit);
        sort_and_limit(&mut reversed, order.as_ref(), limit);
        // Rows equal under compare_rows (same clock and id) may keep their input order.
        prop_assert_eq!(ids(&rows), ids(&reversed));
        prop_assert!(rows.iter().zip(&reversed).all(|(a, b)| a.clock == b.clock));
        let o = order.as_ref();
        prop_assert!(rows.windows(2).all(|w| compare_rows(o, &w[0], &w[1]).is_le()));
    }
}
