//! `sealbench crypto`: runs the sweep, writes `crypto.json` and the plots, prints the table.

use crate::cli::CryptoArgs;
use crate::crypto::SweepPlan;
use crate::crypto::sweep::{self, Progress};
use crate::error::{Failure, Outcome};
use crate::output;
use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};
use std::io::IsTerminal;
use std::process::ExitCode;

/// Progress on a bar when stderr is a terminal, as plain lines otherwise.
struct Bar {
    bar: Option<ProgressBar>,
    n: u64,
    total: u64,
}

impl Progress for Bar {
    fn step(&mut self, what: &str) {
        self.n += 1;
        match &self.bar {
            Some(b) => {
                b.set_position(self.n - 1);
                b.set_message(what.to_owned());
            }
            None => eprintln!("[{}/{}] measuring {what}", self.n, self.total),
        }
    }
}

/// `--protocol` and `--group-sizes`: which protocols the protocol section measures, at
/// which group sizes (`--protocol none` leaves the section out).
fn protocol_options(args: &CryptoArgs, plan: &mut SweepPlan) -> anyhow::Result<()> {
    if args.protocol.iter().any(|p| p == "none") {
        plan.protocols = None;
        return Ok(());
    }
    let Some(p) = plan.protocols.as_mut() else { return Ok(()) };
    if !args.protocol.is_empty() {
        p.protocols = Vec::new();
        for name in &args.protocol {
            let proto: sealproto::Protocol = name.parse().map_err(|e| anyhow::anyhow!("--protocol: {e}"))?;
            if !proto.available() {
                anyhow::bail!(
                    "--protocol: {proto} is not built into this binary (build with the Cargo feature '{proto}')"
                );
            }
            if !proto.encrypts() {
                anyhow::bail!("--protocol: {proto} encrypts nothing, so this sweep has nothing of it to measure");
            }
            p.protocols.push(proto);
        }
    }
    if !args.group_sizes.is_empty() {
        p.group_sizes = args.group_sizes.iter().map(|&n| n as usize).collect();
    }
    Ok(())
}

/// Runs `sealbench crypto`.
///
/// # Errors
/// When the output directory cannot be written.
pub fn run(args: &CryptoArgs) -> Outcome {
    let mut plan = if args.quick { SweepPlan::quick() } else { SweepPlan::full() };
    if !args.aead.is_empty() {
        plan.aeads = args.aead.clone();
        plan.mode_aeads.retain(|a| args.aead.contains(a));
    }
    if !args.backend.is_empty() {
        plan.backends = args.backend.clone();
        plan.backends.dedup();
    }
    plan.check().map_err(Failure::usage)?;
    if let Some(b) = plan.backends.iter().find(|b| plan.aeads.iter().all(|a| !b.has_aead(*a))) {
        let only = plan.aeads.iter().find(|a| !b.has_aead(**a)).copied().unwrap_or(sealcore::AeadKind::None);
        return Err(Failure::usage(anyhow::anyhow!("--backend {b} with --aead: {}", b.check(only).unwrap_err())));
    }
    if !args.sizes.is_empty() {
        plan.sizes = args.sizes.iter().map(|&s| s as usize).collect();
    }
    protocol_options(args, &mut plan).map_err(Failure::usage)?;
    let dir = output::result_dir(args.out.as_deref(), &format!("crypto-{}", crate::timefmt::compact_now()))
        .map_err(Failure::usage)?;
    let total = plan.steps();
    let bar = std::io::stderr().is_terminal().then(|| {
        let b = ProgressBar::new(total);
        b.set_style(
            ProgressStyle::with_template("{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} {msg}")
                .expect("static template"),
        );
        b
    });
    let mut progress = Bar { bar, n: 0, total };
    let report = sweep::run(&plan, &mut progress)?;
    if let Some(b) = &progress.bar {
        b.finish_and_clear();
    }
    let json = dir.join("crypto.json");
    output::write_json(&json, &report)?;
    let mut files = vec![json];
    if !args.no_plots {
        files.extend(crate::present::plot::crypto::render_all(&dir, &report).context("drawing the crypto plots")?);
        let protocols = crate::present::plot::protocols::render_all(&dir, &report.protocols);
        files.extend(protocols.context("drawing the protocol plots")?);
    }
    crate::output::stdout(&format!("{}\nwrote {} files to {}\n", report.table(), files.len(), dir.display()));
    Ok(ExitCode::SUCCESS)
}
