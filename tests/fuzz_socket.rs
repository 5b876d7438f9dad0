//! Hostile input, fuzzed: the control socket's lines (the hello, then commands), from the real
//! protocol's lines spliced with random bytes, JSON objects of the protocol's keys with random
//! values, and plain random bytes. Every line must decode to `Ok` or an error: no panic, and
//! nothing `Ok` that is out of bounds.
//!
//! `KD_TUI_FUZZ_CASES` cases per target (64 by default), as in `fuzz_inputs`; a long run:
//! `KD_TUI_FUZZ_CASES=20000 cargo test --release --test fuzz_socket`.

use kd_tui::protocol::Command;
use kd_tui::remote::wire::{self, MAX_KEY, MAX_REASON, MAX_VALUE};
use kd_tui::remote::{MAX_LINE, VERSION};
use proptest::prelude::*;

fn cases() -> u32 {
    std::env::var("KD_TUI_FUZZ_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(64)
}

/// Lines a real client sends.
const SEEDS: &[&str] = &[
    r#"{"hello":"kd-tui","version":1}"#,
    r#"{"command":"set","key":"distill.temperature","value":"8"}"#,
    r#"{"command":"set","key":"student.lr","value":"1e-3"}"#,
    r#"{"command":"set_paused","role":"teacher","paused":true}"#,
    r#"{"command":"skip_phase"}"#,
    r#"{"command":"checkpoint"}"#,
    r#"{"command":"stop","reason":"the user"}"#,
];

/// A seed with a range cut out and random bytes put in its place.
fn spliced() -> impl Strategy<Value = Vec<u8>> {
    (
        prop::sample::select(SEEDS),
        any::<usize>(),
        0usize..16,
        prop::collection::vec(any::<u8>(), 0..24),
    )
        .prop_map(|(seed, at, cut, put)| {
            let mut bytes = seed.as_bytes().to_vec();
            let at = at % (bytes.len() + 1);
            let end = (at + cut).min(bytes.len());
            bytes.splice(at..end, put);
            bytes
        })
}

/// A JSON object of the protocol's keys with values of any kind, some long.
fn shaped() -> impl Strategy<Value = Vec<u8>> {
    let key = prop::sample::select(vec![
        "hello", "version", "command", "key", "value", "role", "paused", "reason", "extra",
    ]);
    let value = prop_oneof![
        prop::sample::select(vec![
            "set",
            "set_paused",
            "skip_phase",
            "checkpoint",
            "stop",
            "kd-tui",
            "teacher",
            "student",
        ])
        .prop_map(serde_json::Value::from),
        any::<String>().prop_map(serde_json::Value::from),
        (0usize..3000).prop_map(|n| serde_json::Value::from("x".repeat(n))),
        any::<i64>().prop_map(serde_json::Value::from),
        any::<f64>().prop_map(|f| serde_json::json!(f)),
        any::<bool>().prop_map(serde_json::Value::from),
        Just(serde_json::Value::Null),
        Just(serde_json::json!([1, {"a": []}])),
    ];
    prop::collection::btree_map(key, value, 0..5).prop_map(|fields| {
        let object: serde_json::Map<String, serde_json::Value> = fields
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect();
        serde_json::to_vec(&object).unwrap()
    })
}

fn line() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        spliced(),
        shaped(),
        prop::collection::vec(any::<u8>(), 0..64),
        // Past the longest line.
        Just(vec![b'{'; MAX_LINE + 1]),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases()))]

    #[test]
    fn hello_lines_decode_or_are_refused(line in line()) {
        if let Ok(hello) = wire::parse_hello(&line) {
            prop_assert_eq!(hello.hello.as_str(), "kd-tui");
            prop_assert_eq!(hello.version, VERSION);
        }
    }

    #[test]
    fn command_lines_decode_within_bounds_or_are_refused(line in line()) {
        match wire::parse_command(&line) {
            Ok(Some(Command::Set { key, value })) => {
                prop_assert!(key.len() <= MAX_KEY && value.len() <= MAX_VALUE);
            }
            Ok(Some(Command::Stop { reason })) => prop_assert!(reason.len() <= MAX_REASON),
            Ok(None) => prop_assert!(line.trim_ascii().is_empty()),
            Ok(Some(_)) => {}
            Err(e) => prop_assert!(!e.to_string().is_empty()),
        }
    }
}

#[test]
fn every_seed_decodes() {
    assert!(wire::parse_hello(SEEDS[0].as_bytes()).is_ok());
    for seed in &SEEDS[1..] {
        assert!(
            matches!(wire::parse_command(seed.as_bytes()), Ok(Some(_))),
            "{seed}"
        );
    }
}
