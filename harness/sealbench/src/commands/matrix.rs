//! `sealbench matrix SCENARIO --aead a,b --pattern XX,IK --mode noise,ratchet
//! --transport ws,wss`: the same
//! scenario (same seed, same schedule) once per combination, in an interleaved order
//! repeated `--repeat` times, then one table of what each choice costs end to end.

use crate::cli::MatrixArgs;
use crate::commands::run::execute_quiet;
use crate::commands::run::load_plan;
use crate::error::{Failure, Outcome};
use crate::output;
use crate::present;
use crate::provenance::Provenance;
use crate::results::matrix::{self, Cell, Matrix};
use crate::results::summary::Summary;
use crate::scenario::{Edits, Mode, Plan, Scenario, Transport};
use anyhow::{Context, anyhow};
use sealcore::{AeadKind, Pattern};
use sealproto::Protocol;
use std::process::ExitCode;

/// Runs `sealbench matrix`.
///
/// # Errors
/// Exit 2 for a bad scenario or choice; exit 1 when a run fails.
pub fn run(args: &MatrixArgs) -> Outcome {
    let base = load_plan(&args.scenario, &args.set, &Edits::default()).map_err(Failure::usage)?.scenario;
    let cells = with_protocols(args, &base, combinations(args, &base));
    // Every cell is a typed edit of the one scenario, checked before anything runs.
    let mut scenarios = Vec::new();
    for &(proto, (a, p, m, t)) in &cells {
        let mut s = base.clone();
        (s.crypto.aead, s.crypto.pattern, s.crypto.mode, s.crypto.protocol) = (a, p, m, proto);
        if proto.is_group() {
            // A group protocol fans its one ciphertext out at the relay, whatever the
            // scenario says for noise.
            s.conversations.fanout = crate::scenario::Fanout::Relay;
        }
        let cell = protocol_cell_name(proto, a, p, m, t);
        s.relay
            .require_transport(t)
            .map_err(|e| Failure::usage(anyhow!("{}: cell {cell}: {e:#}", args.scenario.display())))?;
        scenarios.push(
            Plan::new(s).map_err(|e| Failure::usage(anyhow!("{}: cell {cell}: {e:#}", args.scenario.display())))?,
        );
    }
    let repeat = args.repeat.max(1);
    let dir =
        output::result_dir(args.out.as_deref(), &format!("{}-matrix-{}", crate::timefmt::compact_now(), base.name))
            .map_err(Failure::usage)?;
    let provenance = Provenance::collect();
    let mut summaries: Vec<Vec<(String, Summary)>> = vec![Vec::new(); cells.len()];
    let mut order = Vec::new();
    let total = repeat * cells.len();
    for r in 0..repeat {
        // Rotate the starting cell each repeat: no cell always runs first (or last).
        for k in 0..cells.len() {
            let i = (k + r) % cells.len();
            order.push(i);
            let (proto, (a, p, m, t)) = cells[i];
            let name = format!("{}-r{}", protocol_cell_name(proto, a, p, m, t), r + 1);
            eprintln!("[{}/{total}] {name}", order.len());
            let s =
                execute_quiet(&scenarios[i], &dir.join(&name), &[]).with_context(|| format!("matrix cell {name}"))?;
            summaries[i].push((name, s));
        }
    }
    let cells: Vec<Cell> = cells
        .iter()
        .zip(&summaries)
        .map(|((proto, (a, p, m, t)), runs)| {
            let mut cell = Cell::from_runs(a.name(), p.name(), m.name(), t.name(), runs);
            cell.protocol = proto.name().to_owned();
            cell
        })
        .collect();
    let matrix = Matrix { schema_version: 1, kind: "matrix".into(), provenance, scenario: base, repeat, order, cells };
    matrix::write(&dir, &matrix)?;
    let md = present::write_matrix(&dir, &matrix)?;
    crate::output::stdout(&format!("{md}\nresults: {}\n", dir.display()));
    Ok(ExitCode::SUCCESS)
}

/// A cell of a protocol: the scenario's crypto choice it runs with.
type ProtocolCell = (Protocol, (AeadKind, Pattern, Mode, Transport));

/// The cells of every `--protocol`: `noise` takes every combination of the other flags;
/// another protocol (its own cipher suite) one cell per transport.
fn with_protocols(
    args: &MatrixArgs,
    base: &Scenario,
    noise: Vec<(AeadKind, Pattern, Mode, Transport)>,
) -> Vec<ProtocolCell> {
    let protocols = if args.protocol.is_empty() { vec![base.crypto.protocol] } else { args.protocol.clone() };
    let mut cells = Vec::new();
    for proto in protocols {
        if proto == Protocol::Noise {
            cells.extend(noise.iter().map(|&c| (proto, c)));
            continue;
        }
        let mut transports: Vec<Transport> = noise.iter().map(|c| c.3).collect();
        transports.dedup();
        let (a, p, m) = (base.crypto.aead, base.crypto.pattern, base.crypto.mode);
        cells.extend(transports.into_iter().map(|t| (proto, (a, p, m, t))));
    }
    cells
}

/// A cell's name: [`cell_name`] for noise, the protocol's name (and `-wss`) otherwise.
fn protocol_cell_name(proto: Protocol, a: AeadKind, p: Pattern, m: Mode, t: Transport) -> String {
    if proto == Protocol::Noise {
        return cell_name(a, p, m, t);
    }
    let tls = if t == Transport::Wss { "-wss" } else { "" };
    format!("{}{tls}", proto.name())
}

/// A cell's name in run directories: `aead-pattern-mode`, then `-wss` for TLS (a ws
/// cell keeps the name it had before transports were a dimension).
fn cell_name(a: AeadKind, p: Pattern, m: Mode, t: Transport) -> String {
    let tls = if t == Transport::Wss { "-wss" } else { "" };
    format!("{}-{}-{}{tls}", a.name(), p.name(), m.name())
}

/// Every `(aead, pattern, mode, transport)` the flags ask for (plus the `none` baseline
/// unless `--no-baseline`), AEAD varying fastest, transport slowest.
fn combinations(args: &MatrixArgs, base: &Scenario) -> Vec<(AeadKind, Pattern, Mode, Transport)> {
    let mut aeads = if args.aead.is_empty() { vec![base.crypto.aead] } else { args.aead.clone() };
    if !args.no_baseline && !aeads.contains(&AeadKind::None) {
        aeads.push(AeadKind::None);
    }
    let patterns = if args.pattern.is_empty() { vec![base.crypto.pattern] } else { args.pattern.clone() };
    let modes = if args.mode.is_empty() { vec![base.crypto.mode] } else { args.mode.clone() };
    let transports = if args.transport.is_empty() { vec![base.relay.transport()] } else { args.transport.clone() };
    let mut cells = Vec::new();
    for &t in &transports {
        for &p in &patterns {
            for &m in &modes {
                for &a in &aeads {
                    cells.push((a, p, m, t));
                }
            }
        }
    }
    cells
}
