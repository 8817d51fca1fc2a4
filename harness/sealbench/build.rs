//! Records, at build time, the git revision and the versions of the crates whose speed the
//! results depend on, for the provenance block of every result file.

use std::process::Command;

const TRACKED: &[&str] = &[
    "snow",
    "x25519-dalek",
    "curve25519-dalek",
    "chacha20poly1305",
    "chacha20",
    "poly1305",
    "aes-gcm",
    "aes",
    "ghash",
    "sha2",
    "blake2",
    "hkdf",
    "tokio",
    "tokio-tungstenite",
    "tungstenite",
    "rustls",
    "tokio-rustls",
    "ring",
    "aws-lc-rs",
    "aws-lc-sys",
    "libcrux-ml-kem",
    "hdrhistogram",
];

fn main() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    println!("cargo:rerun-if-changed={}", root.join("Cargo.lock").display());
    println!("cargo:rerun-if-changed={}", root.join(".git/HEAD").display());
    println!("cargo:rerun-if-changed={}", root.join(".git/refs/heads").display());
    let rev = Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .current_dir(&root)
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_else(|| "unknown".into());
    println!("cargo:rustc-env=SEALBENCH_GIT_REV={rev}");

    let lock = std::fs::read_to_string(root.join("Cargo.lock")).unwrap_or_default();
    let mut versions = Vec::new();
    let mut name: Option<&str> = None;
    for line in lock.lines() {
        if let Some(n) = line.strip_prefix("name = ") {
            name = Some(n.trim_matches('"'));
        } else if let (Some(n), Some(v)) = (name, line.strip_prefix("version = ")) {
            if TRACKED.contains(&n) {
                versions.push(format!("{n}={}", v.trim_matches('"')));
            }
            name = None;
        }
    }
    println!("cargo:rustc-env=SEALBENCH_DEP_VERSIONS={}", versions.join(","));
}
