//! Writes the protocol test vectors to `tests/vectors/` at the repository root.
//!
//! Run with `cargo run -p shmsock --example gen_vectors` (optionally with an output
//! directory as the only argument). Every input is fixed, so the output is the
//! same on every machine; `cargo test -p shmsock --test vectors` fails when the
//! files on disk differ from it. The format is in `tests/vectors/README.md`.

#[path = "../tests/common/vectors_gen.rs"]
mod vectors_gen;

use std::path::PathBuf;

fn main() {
    let dir = std::env::args_os()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..").join("tests").join("vectors"));
    if let Err(e) = std::fs::create_dir_all(&dir) {
        eprintln!("gen_vectors: cannot create {}: {e}", dir.display());
        std::process::exit(1);
    }
    for (name, value) in vectors_gen::all_files() {
        let path = dir.join(&name);
        if let Err(e) = std::fs::write(&path, vectors_gen::file_text(&value)) {
            eprintln!("gen_vectors: cannot write {}: {e}", path.display());
            std::process::exit(1);
        }
        println!("wrote {}", path.display());
    }
}
