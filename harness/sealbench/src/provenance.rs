//! Where a result came from: software versions, git revision, CPU, cores, OS and time.
//! Every result file carries one, so that `compare` can warn when two runs differ.
//!
//! # Layout
//! - this module — the [`Provenance`] record and how it is collected.
//! - [`calibration`] — this machine's floors as a provenance carries them (cached).

pub mod calibration;

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The CPU flags that decide which AEAD code paths run.
pub const FLAGS_OF_INTEREST: &[&str] = &["aes", "pclmulqdq", "avx2", "avx512f", "vaes", "vpclmulqdq", "sha_ni"];

/// Provenance of a result.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Provenance {
    /// sealbench's version.
    pub sealbench_version: String,
    /// Git revision the binary was built from (`unknown` outside a checkout).
    pub git_revision: String,
    /// Versions of the crates the measured code runs on.
    pub crate_versions: BTreeMap<String, String>,
    /// The crypto backends in this build and the versions of what each runs on (a
    /// backend compiled out is absent).
    #[serde(default)]
    pub backends: BTreeMap<String, String>,
    /// CPU model name from `/proc/cpuinfo`.
    pub cpu_model: String,
    /// Which of [`FLAGS_OF_INTEREST`] the CPU has.
    pub cpu_flags: BTreeMap<String, bool>,
    /// Logical CPUs available to this process.
    pub cores: usize,
    /// Operating system and kernel.
    pub os: String,
    /// Build profile (`release` or `debug`): debug figures are not comparable.
    pub build_profile: String,
    /// Start of the measurement, UTC, RFC 3339.
    pub started_at: String,
    /// This machine's floors (`sealbench calibrate`, cached per machine), when known:
    /// CPU per message is also reported as a multiple of them. Absent in results made
    /// before calibration existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub calibration: Option<calibration::Calibration>,
}

impl Provenance {
    /// Reads this machine's provenance now, with its cached calibration if there is one
    /// (see [`Provenance::with_calibration`], in [`crate::calibrate`], for a run, which
    /// measures one if not).
    pub fn collect() -> Self {
        let mut p = Self::collect_without_calibration();
        p.calibration = calibration::cached();
        p
    }

    /// This machine's provenance without reading the calibration cache.
    pub fn collect_without_calibration() -> Self {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu_model = cpuinfo
            .lines()
            .find_map(|l| {
                l.strip_prefix("model name").and_then(|r| r.split_once(':')).map(|(_, v)| v.trim().to_owned())
            })
            .unwrap_or_else(|| "unknown".into());
        let flags: Vec<&str> = cpuinfo
            .lines()
            .find_map(|l| l.strip_prefix("flags").and_then(|r| r.split_once(':')).map(|(_, v)| v))
            .map(|v| v.split_whitespace().collect())
            .unwrap_or_default();
        let cpu_flags = FLAGS_OF_INTEREST.iter().map(|f| ((*f).to_owned(), flags.contains(f))).collect();
        let crate_versions = env!("SEALBENCH_DEP_VERSIONS")
            .split(',')
            .filter_map(|kv| kv.split_once('='))
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        let backends = backend_versions(&crate_versions);
        let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
        Provenance {
            sealbench_version: env!("CARGO_PKG_VERSION").to_owned(),
            git_revision: env!("SEALBENCH_GIT_REV").to_owned(),
            crate_versions,
            backends,
            cpu_model,
            cpu_flags,
            cores: std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
            os: format!("{} {}", std::env::consts::OS, kernel.trim()),
            build_profile: if cfg!(debug_assertions) { "debug" } else { "release" }.to_owned(),
            started_at: crate::timefmt::rfc3339_now(),
            calibration: None,
        }
    }

    /// The flags the CPU has, space-separated, for console output.
    pub fn flags_line(&self) -> String {
        let on: Vec<&str> = self.cpu_flags.iter().filter(|(_, v)| **v).map(|(k, _)| k.as_str()).collect();
        on.join(" ")
    }
}

/// `backend → "crate version, ..."` for the backends in this build.
fn backend_versions(crates: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    let list = |names: &[&str]| {
        names.iter().filter_map(|n| crates.get(*n).map(|v| format!("{n} {v}"))).collect::<Vec<_>>().join(", ")
    };
    sealcore::Backend::compiled()
        .map(|b| {
            let crates = match b {
                sealcore::Backend::Ring => list(&["ring", "x25519-dalek", "blake2", "libcrux-ml-kem"]),
                sealcore::Backend::AwsLcRs => list(&["aws-lc-rs", "aws-lc-sys", "blake2"]),
                _ => list(&["chacha20poly1305", "aes-gcm", "aes", "x25519-dalek", "sha2", "blake2", "libcrux-ml-kem"]),
            };
            (b.name().to_owned(), crates)
        })
        .collect()
}
