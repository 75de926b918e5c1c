// Committed copies generated from a core table, checked by the tests of the
// crate that owns them.
//
// A copy sits between two marker lines in a committed file (a C enum must be
// literal for cbindgen, a C++ header for its readers): one containing
// `BEGIN GENERATED: <what>`, one containing `END GENERATED: <what>`. The
// owning crate's test renders the lines from the core and calls [`check`],
// which fails when the file differs, or rewrites it when `SHMSOCK_REGENERATE=1`.
// Included into those tests with `include!` (so it has no inner attributes).

use std::path::Path;

/// The variable that turns [`check`] from comparing into rewriting.
pub const REGENERATE: &str = "SHMSOCK_REGENERATE";

/// Fails when the lines between the markers of `what` in `path` are not
/// `expected`; with `SHMSOCK_REGENERATE=1` in the environment, writes them.
pub fn check(path: &Path, what: &str, expected: &str) {
    let shown = path.display();
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("cannot read {shown}: {e}"));
    let begin = format!("BEGIN GENERATED: {what}");
    let end = format!("END GENERATED: {what}");
    let start = text
        .find(&begin)
        .and_then(|i| text[i..].find('\n').map(|j| i + j + 1))
        .unwrap_or_else(|| panic!("{shown} has no line with '{begin}'"));
    let stop = text[start..]
        .find(&end)
        .map(|i| text[..start + i].rfind('\n').map_or(0, |j| j + 1).max(start))
        .unwrap_or_else(|| panic!("{shown} has no line with '{end}' after '{begin}'"));
    if text[start..stop] == *expected {
        return;
    }
    if std::env::var(REGENERATE).is_ok_and(|v| v == "1") {
        let updated = format!("{}{expected}{}", &text[..start], &text[stop..]);
        std::fs::write(path, updated).unwrap_or_else(|e| panic!("cannot write {shown}: {e}"));
        eprintln!("regenerated '{what}' in {shown}");
        return;
    }
    panic!(
        "'{what}' in {shown} is stale (the core table changed?): rerun this test with {REGENERATE}=1 \
         to rewrite it, and commit the result.\n--- expected:\n{expected}--- found:\n{}",
        &text[start..stop]
    );
}

/// `text` as lines of at most `width` characters, each starting with `prefix`,
/// broken between words.
pub fn wrap(text: &str, prefix: &str, width: usize) -> String {
    let mut out = String::new();
    let mut line = String::new();
    for word in text.split_whitespace() {
        if !line.is_empty() && prefix.len() + line.len() + 1 + word.len() > width {
            out.push_str(&format!("{prefix}{line}\n"));
            line.clear();
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(word);
    }
    if !line.is_empty() {
        out.push_str(&format!("{prefix}{line}\n"));
    }
    out
}
