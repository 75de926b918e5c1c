//! Generates the cxx bridge of src/lib.rs and compiles it with the C++ API
//! (src/*.cpp, one file per concept) into this crate's static library.
//!
//! `SHMSOCK_CXX_SANITIZE=address,undefined` compiles the C++ of this crate with
//! those sanitizers (the sanitizer build of the C++ tests sets it); the Rust code
//! and libsodium are not instrumented.

/// The C++ API's source files (src/).
const CPP_SOURCES: &[&str] =
    &["errors.cpp", "keys.cpp", "options.cpp", "stream.cpp", "server.cpp", "client.cpp", "pubsub.cpp", "reactor.cpp"];

fn main() {
    let mut build = cxx_build::bridge("src/lib.rs");
    build
        .files(CPP_SOURCES.iter().map(|f| format!("src/{f}")))
        .include("include")
        .include("src")
        .std("c++17")
        .flag_if_supported("-Wno-unused-parameter");
    println!("cargo:rerun-if-env-changed=SHMSOCK_CXX_SANITIZE");
    if let Ok(sanitizers) = std::env::var("SHMSOCK_CXX_SANITIZE") {
        let sanitizers = sanitizers.trim();
        if !sanitizers.is_empty() {
            build
                .flag(format!("-fsanitize={sanitizers}"))
                .flag("-fno-omit-frame-pointer")
                .flag("-fno-sanitize-recover=all");
        }
    }
    build.compile("shmsock_cxx_bridge");
    for file in CPP_SOURCES {
        println!("cargo:rerun-if-changed=src/{file}");
    }
    for file in ["src/lib.rs", "src/internal.hpp", "src/callbacks.h", "src/testing.hpp", "include"] {
        println!("cargo:rerun-if-changed={file}");
    }
}
