//! Function order for the release binary's `.text`.
//!
//! `link-order.txt` lists, hottest first, the functions the API server runs (its startup and
//! the benchmark workloads on both stores), as written by `bench/layout/refresh.sh`. The
//! linker (LLD) places them side by side at the start of `.text`. Left to its default order,
//! the ~4 MB of code the server runs is spread over the 23 MB of `.text`, and the kernel maps
//! a 64 KiB window of file pages around every first touch ("fault-around"): the API server's
//! resident text was 8.8 MB under load; with the order it is about 4 MB, and the hot path
//! shares fewer cache lines and TLB entries with cold code.
//!
//! Names the binary no longer has (code changed since the list was made) are skipped by the
//! linker; the order then helps less, and the binary is otherwise the same. Set
//! `QA_SENTINEL_LINK_ORDER=0` to link in the default order (and without the packed
//! relocations below).

use std::env;
use std::path::PathBuf;

fn main() {
    println!("cargo:rerun-if-changed=link-order.txt");
    println!("cargo:rerun-if-env-changed=QA_SENTINEL_LINK_ORDER");
    println!("cargo:rerun-if-env-changed=CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_LINKER");
    let var = |k: &str| env::var(k).unwrap_or_default();
    // The list names release-build symbols; Rust ≥ 1.90 links this target with its bundled
    // LLD, which takes `--symbol-ordering-file`. A configured linker may be another one.
    let applies = var("PROFILE") == "release"
        && var("TARGET") == "x86_64-unknown-linux-gnu"
        && !matches!(
            var("QA_SENTINEL_LINK_ORDER").as_str(),
            "0" | "off" | "false"
        )
        && env::var_os("CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_LINKER").is_none()
        && !var("CARGO_ENCODED_RUSTFLAGS").contains("link");
    if !applies {
        return;
    }
    // Relative relocations packed as DT_RELR (glibc ≥ 2.36): the dynamic loader read all
    // 53,000 of them at startup from a 1.3 MB `.rela.dyn`, which stayed resident; packed,
    // they take 15 KB.
    println!("cargo:rustc-link-arg-bin=qa-sentinel=-Wl,-z,pack-relative-relocs");
    let Some(dir) = env::var_os("CARGO_MANIFEST_DIR") else {
        return;
    };
    let order = PathBuf::from(dir).join("link-order.txt");
    if order.is_file() {
        println!(
            "cargo:rustc-link-arg-bin=qa-sentinel=-Wl,--symbol-ordering-file={}",
            order.display()
        );
        println!("cargo:rustc-link-arg-bin=qa-sentinel=-Wl,--no-warn-symbol-ordering");
    }
}
