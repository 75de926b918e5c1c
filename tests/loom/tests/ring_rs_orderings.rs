//! The model mirrors core/src/ring.rs: this reads the orderings each ring
//! function uses from its source and compares them with `Orderings::RING_RS`.
//! When it fails, ring.rs changed an ordering: update the model (and
//! PROTOCOL.md, "Memory ordering") to match, and let loom judge the change.

use std::sync::atomic::Ordering;

use shmsock_loom::Orderings;

const RING_RS: &str = include_str!("../../../core/src/ring.rs");

/// The body of `fn name` (after its signature) inside the source section that starts at `section`.
fn body(section: &str, name: &str) -> &'static str {
    let from = RING_RS.find(section).unwrap_or_else(|| panic!("ring.rs has no `{section}`"));
    let rest = &RING_RS[from..];
    let start = rest.find(&format!("fn {name}(")).unwrap_or_else(|| panic!("no fn {name} after `{section}`"));
    // From the opening brace: the signature names no ordering.
    let rest = &rest[start..];
    let rest = &rest[rest.find('{').expect("a function body")..];
    // rustfmt closes a method at four spaces and a free function at column 0.
    let end = rest.find("\n    }\n").into_iter().chain(rest.find("\n}\n")).min().expect("unterminated function");
    &rest[..end]
}

/// The memory-ordering words in `code`, in order: the argument of each
/// `Ordering::X`, as "fence X" when it is a fence's, and "take_flag" for a call
/// of the flag-clearing helper.
fn orderings(code: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut rest = code;
    loop {
        let next_ordering = rest.find("Ordering::");
        let next_take = rest.find("take_flag(");
        match (next_ordering, next_take) {
            (Some(o), t) if t.is_none_or(|t| o < t) => {
                let word: String =
                    rest[o + "Ordering::".len()..].chars().take_while(|c| c.is_ascii_alphanumeric()).collect();
                let fenced = rest[..o].ends_with("fence(");
                found.push(if fenced { format!("fence {word}") } else { word });
                rest = &rest[o + 1..];
            }
            (_, Some(t)) => {
                found.push("take_flag".to_string());
                rest = &rest[t + 1..];
            }
            _ => return found,
        }
    }
}

fn name(ordering: Ordering) -> String {
    format!("{ordering:?}")
}

fn assert_fn(section: &str, function: &str, expected: &[String]) {
    assert_eq!(orderings(body(section, function)), expected, "ring.rs `{section}` fn {function} changed its orderings");
}

#[test]
fn the_model_uses_the_orderings_of_ring_rs() {
    let o = Orderings::RING_RS;
    let fenced = |on: bool| if on { vec!["fence SeqCst".to_string()] } else { vec![] };
    let producer = "impl Producer {";
    let consumer = "impl Consumer {";

    assert_fn(producer, "head", &[name(o.load_head)]);
    let mut publish = vec![name(o.publish_tail)];
    publish.extend(fenced(o.fence_after_publish));
    publish.push("take_flag".into());
    assert_fn(producer, "publish", &publish);
    let mut arm = vec![name(o.arm_flag)];
    arm.extend(fenced(o.fence_after_arm));
    assert_fn(producer, "arm", &arm);
    assert_fn(producer, "disarm", &[name(Ordering::Relaxed)]);

    assert_fn(consumer, "tail", &[name(o.load_tail)]);
    let mut advance = vec![name(o.store_head)];
    advance.extend(fenced(o.fence_after_publish));
    advance.push("take_flag".into());
    assert_fn(consumer, "advance", &advance);
    assert_fn(consumer, "arm", &arm);
    assert_fn(consumer, "disarm", &[name(Ordering::Relaxed)]);

    assert_fn("fn take_flag", "take_flag", &[name(Ordering::Relaxed), name(o.take_flag_swap)]);
}

#[test]
fn the_model_uses_the_operations_of_ring_rs() {
    // The kind of access matters too (loom treats a swap and a store apart).
    assert!(body("impl Producer {", "arm").contains(".swap(1, "), "Producer::arm no longer swaps");
    assert!(body("impl Consumer {", "arm").contains(".swap(1, "), "Consumer::arm no longer swaps");
    assert!(body("impl Producer {", "publish").contains("TAIL).store("), "publish no longer stores the tail");
    assert!(body("impl Consumer {", "advance").contains("HEAD).store("), "advance no longer stores the head");
    let take = body("fn take_flag", "take_flag");
    assert!(take.contains(".load(") && take.contains(".swap(0, "), "take_flag changed: {take}");
}
