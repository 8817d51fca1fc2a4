//! The command line (clap derive). Parsing only: every command's work lives in its module.

use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

/// sealbench: load and performance harness for end-to-end-encrypted messaging.
///
/// Simulated clients run real Noise handshakes through a relay over WebSockets and send
/// real AEAD-sealed messages; sealbench measures every stage with HdrHistograms.
#[derive(Debug, Parser)]
#[command(name = "sealbench", version, about, long_about = None, propagate_version = true)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Single-core sweep of the crypto core: AEAD seal/open per message size, handshakes
    /// per second per suite, X25519, ratchet vs Noise transport. Writes crypto.json and plots.
    Crypto(CryptoArgs),
}

/// `sealbench crypto`.
#[derive(Debug, Args)]
pub struct CryptoArgs {
    /// Quick sweep (~10 s): every AEAD at 64 B, 1 KiB and 16 KiB, every pattern once per
    /// Noise cipher. Without it: 16 B to 64 KiB plus 1350 B, every suite (~2 minutes).
    #[arg(long)]
    pub quick: bool,

    /// Output directory [default: results/crypto-<UTC time>/].
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,

    /// Only these AEADs (comma-separated): chacha20-poly1305, xchacha20-poly1305,
    /// aes-128-gcm, aes-256-gcm, none (the UNENCRYPTED baseline).
    #[arg(long, value_delimiter = ',', value_name = "AEAD,...")]
    pub aead: Vec<sealcore::AeadKind>,

    /// Only these message sizes in bytes (comma-separated), instead of the plan's.
    #[arg(long, value_delimiter = ',', value_name = "BYTES,...", value_parser = clap::value_parser!(u32).range(0..=65536))]
    pub sizes: Vec<u32>,

    /// Do not draw plots (crypto.json and the table only).
    #[arg(long)]
    pub no_plots: bool,
}
