//! Link settings of libshmsock.so. Reads files of the source tree, writes none.
//!
//! - a linker version script (shmsock.map) so the shared library exports the
//!   `shmsock_*` functions only;
//! - a SONAME carrying the ABI version: `libshmsock.so.<major>` from 1.0 on, and
//!   `libshmsock.so.0.<minor>` before (where a minor release may break the ABI).

fn main() {
    let dir = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    let major = std::env::var("CARGO_PKG_VERSION_MAJOR").expect("cargo sets CARGO_PKG_VERSION_MAJOR");
    let minor = std::env::var("CARGO_PKG_VERSION_MINOR").expect("cargo sets CARGO_PKG_VERSION_MINOR");
    println!("cargo:rerun-if-changed=shmsock.map");
    println!("cargo:rerun-if-changed=build.rs");
    let target_os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    if target_os == "linux" {
        println!("cargo:rustc-cdylib-link-arg=-Wl,--version-script={dir}/shmsock.map");
        let soname = if major == "0" { format!("libshmsock.so.0.{minor}") } else { format!("libshmsock.so.{major}") };
        println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,{soname}");
    }
}
