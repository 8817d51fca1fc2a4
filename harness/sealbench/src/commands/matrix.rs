//! `sealbench matrix SCENARIO --aead a,b --backend rustcrypto,ring --pattern XX,IK-pq
//! --mode noise,kdf-chain --transport ws,wss`: the same
//! scenario (same seed, same schedule) once per combination, in an interleaved order
//! repeated `--repeat` times, then one table of what each choice costs end to end.

use crate::cli::MatrixArgs;
use crate::commands::run::execute_quiet;
use crate::commands::run::load_plan;
use crate::error::{Failure, Outcome};
use crate::output;
use crate::present;
use crate::provenance::Provenance;
use crate::results::header::Header;
use crate::results::matrix::{self, Cell, Matrix};
use crate::results::summary::Summary;
use crate::scenario::{Mode, Plan, Scenario, Transport};
use anyhow::{Context, anyhow};
use sealcore::{AeadKind, Backend, Pattern};
use sealproto::Protocol;
use std::process::ExitCode;

/// Runs `sealbench matrix`.
///
/// # Errors
/// Exit 2 for a bad scenario or choice; exit 1 when a run fails.
pub fn run(args: &MatrixArgs) -> Outcome {
    let common = &args.common;
    let base = load_plan(&common.scenario, &common.set, &common.edits()).map_err(Failure::usage)?.scenario;
    let cells = with_franking(args, &base, with_protocols(args, &base, combinations(args, &base)));
    // Every cell is a typed edit of the one scenario, checked before anything runs.
    let mut scenarios = Vec::new();
    for &((proto, (a, b, p, m, t)), franked) in &cells {
        let mut s = base.clone();
        (s.crypto.aead, s.crypto.backend, s.crypto.pattern, s.crypto.mode, s.crypto.protocol) = (a, b, p, m, proto);
        s.crypto.franking = franked;
        if !franked {
            s.traffic.report_share = 0.0; // only franked messages can be reported
        }
        if proto.is_group() {
            // A group protocol fans its one ciphertext out at the relay, whatever the
            // scenario says for noise.
            s.conversations.fanout = crate::scenario::Fanout::Relay;
        }
        let cell = franked_name(protocol_cell_name(proto, (a, b, p, m, t)), franked);
        if proto == Protocol::Noise {
            b.check(a).map_err(|e| Failure::usage(anyhow!("--backend: cell {cell}: {e}")))?;
        }
        s.relay
            .require_transport(t)
            .map_err(|e| Failure::usage(anyhow!("{}: cell {cell}: {e:#}", common.scenario.display())))?;
        let plan =
            Plan::new(s).map_err(|e| Failure::usage(anyhow!("{}: cell {cell}: {e:#}", common.scenario.display())))?;
        // What `run --dry-run` checks, for every cell: this machine's limits and the
        // scenario's thresholds against the cell's traffic classes.
        crate::driver::preflight(&plan).map_err(|e| Failure::usage(anyhow!("cell {cell}: {e:#}")))?;
        crate::verdict::threshold::parse_for(&plan.scenario.thresholds, &plan.tags())
            .map_err(|e| Failure::usage(anyhow!("{}: cell {cell}: thresholds: {e:#}", common.scenario.display())))?;
        scenarios.push(plan);
    }
    let repeat = args.repeat.max(1) as usize;
    if common.dry_run {
        let names: Vec<String> =
            cells.iter().map(|&((p, c), franked)| franked_name(protocol_cell_name(p, c), franked)).collect();
        crate::output::stdout(&format!(
            "matrix of `{}` is valid: {} cells × {repeat} runs = {} runs of {:?} each: {}\n",
            base.name,
            cells.len(),
            cells.len() * repeat,
            base.duration + base.warmup,
            names.join(", ")
        ));
        return Ok(ExitCode::SUCCESS);
    }
    let mut batch = crate::commands::run::live::Batch::start(&common.live, !common.no_plots)?;
    let dir =
        output::result_dir(common.out.as_deref(), &format!("{}-matrix-{}", crate::timefmt::compact_now(), base.name))
            .map_err(Failure::usage)?;
    let provenance = Provenance::with_calibration();
    let mut summaries: Vec<Vec<(String, Summary)>> = vec![Vec::new(); cells.len()];
    let mut order = Vec::new();
    let total = repeat * cells.len();
    for r in 0..repeat {
        // Rotate the starting cell each repeat: no cell always runs first (or last).
        for k in 0..cells.len() {
            let i = (k + r) % cells.len();
            order.push(i);
            let ((proto, c), franked) = cells[i];
            let name = format!("{}-r{}", franked_name(protocol_cell_name(proto, c), franked), r + 1);
            eprintln!("[{}/{total}] {name}", order.len());
            let s = execute_quiet(&scenarios[i], &dir.join(&name), &[], &mut batch)
                .with_context(|| format!("matrix cell {name}"))?;
            summaries[i].push((name, s));
        }
    }
    let cells: Vec<Cell> = cells
        .iter()
        .zip(&summaries)
        .map(|(((proto, (a, b, p, m, t)), _), runs)| {
            let mut cell = Cell::from_runs(a.name(), b.name(), p.name(), m.name(), t.name(), runs);
            cell.protocol = proto.name().to_owned();
            cell.stance = Some(crate::results::stance::Stance::from_runs(proto.name(), runs));
            cell
        })
        .collect();
    let matrix = Matrix { header: Header::new(1, "matrix", provenance), scenario: base, repeat, order, cells };
    matrix::write(&dir, &matrix)?;
    let md = present::write_matrix(&dir, &matrix)?;
    crate::output::stdout(&format!("{md}\nresults: {}\n", dir.display()));
    Ok(ExitCode::SUCCESS)
}

/// A cell of a protocol: the scenario's crypto choice it runs with.
type ProtocolCell = (Protocol, Combination);

/// The cells of every `--protocol`: `noise` takes every combination of the other flags;
/// another protocol (its own cipher suite) one cell per transport.
fn with_protocols(args: &MatrixArgs, base: &Scenario, noise: Vec<Combination>) -> Vec<ProtocolCell> {
    let protocols = if args.protocol.is_empty() { vec![base.crypto.protocol] } else { args.protocol.clone() };
    let mut cells = Vec::new();
    for proto in protocols {
        if proto == Protocol::Noise {
            cells.extend(noise.iter().map(|&c| (proto, c)));
            continue;
        }
        let mut transports: Vec<Transport> = noise.iter().map(|c| c.4).collect();
        transports.dedup();
        let (a, b, p, m) = (base.crypto.aead, base.crypto.backend, base.crypto.pattern, base.crypto.mode);
        cells.extend(transports.into_iter().map(|t| (proto, (a, b, p, m, t))));
    }
    cells
}

/// Each cell once per `--franking` value (the scenario's when none is given); a cell of
/// another protocol than noise only unfranked.
fn with_franking(args: &MatrixArgs, base: &Scenario, cells: Vec<ProtocolCell>) -> Vec<(ProtocolCell, bool)> {
    let values = if args.franking.is_empty() { vec![base.crypto.franking] } else { args.franking.clone() };
    let mut out = Vec::new();
    for c in cells {
        if c.0 != Protocol::Noise {
            out.push((c, false));
            continue;
        }
        out.extend(values.iter().map(|&f| (c, f)));
    }
    out.dedup();
    out
}

/// A franked cell's name ends in `-franked`.
fn franked_name(name: String, franked: bool) -> String {
    if franked { format!("{name}-franked") } else { name }
}

/// A cell's name: [`cell_name`] for noise, the protocol's name (and `-wss`) otherwise.
fn protocol_cell_name(proto: Protocol, (a, b, p, m, t): Combination) -> String {
    if proto == Protocol::Noise {
        return cell_name(a, b, p, m, t);
    }
    let tls = if t == Transport::Wss { "-wss" } else { "" };
    format!("{}{tls}", proto.name())
}

/// A cell's name in run directories: `aead-pattern-mode`, then `-<backend>` unless it is
/// rustcrypto and `-wss` for TLS (a rustcrypto ws cell keeps the name it had before
/// backends and transports were dimensions).
fn cell_name(a: AeadKind, b: Backend, p: Pattern, m: Mode, t: Transport) -> String {
    let tls = if t == Transport::Wss { "-wss" } else { "" };
    let backend = if b == Backend::default() { String::new() } else { format!("-{b}") };
    format!("{}-{}-{}{backend}{tls}", a.name(), p.name(), m.name())
}

/// A cell: AEAD, backend, pattern, mode, transport.
type Combination = (AeadKind, Backend, Pattern, Mode, Transport);

/// Every `(aead, backend, pattern, mode, transport)` the flags ask for (plus the `none`
/// baseline, once per backend, unless `--no-baseline`), AEAD varying fastest, then backend,
/// transport slowest.
fn combinations(args: &MatrixArgs, base: &Scenario) -> Vec<Combination> {
    let mut aeads = if args.aead.is_empty() { vec![base.crypto.aead] } else { args.aead.clone() };
    if !args.no_baseline && !aeads.contains(&AeadKind::None) {
        aeads.push(AeadKind::None);
    }
    let patterns = if args.pattern.is_empty() { vec![base.crypto.pattern] } else { args.pattern.clone() };
    let modes = if args.mode.is_empty() { vec![base.crypto.mode] } else { args.mode.clone() };
    let backends = if args.backend.is_empty() { vec![base.crypto.backend] } else { args.backend.clone() };
    let transports = if args.transport.is_empty() { vec![base.relay.transport()] } else { args.transport.clone() };
    let mut cells = Vec::new();
    for &t in &transports {
        for &p in &patterns {
            for &m in &modes {
                for &b in &backends {
                    for &a in &aeads {
                        cells.push((a, b, p, m, t));
                    }
                }
            }
        }
    }
    cells
}
