//! Generates the cxx bridge of src/lib.rs and compiles it with the C++ API
//! (src/shmsock.cpp) into this crate's static library.
//!
//! `SHMSOCK_CXX_SANITIZE=address,undefined` compiles the C++ of this crate with
//! those sanitizers (the sanitizer build of the C++ tests sets it); the Rust code
//! and libsodium are not instrumented.

fn main() {
    let mut build = cxx_build::bridge("src/lib.rs");
    build
        .file("src/shmsock.cpp")
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
    for file in ["src/lib.rs", "src/shmsock.cpp", "src/callbacks.h", "src/testing.hpp", "include/shmsock.hpp"] {
        println!("cargo:rerun-if-changed={file}");
    }
}
