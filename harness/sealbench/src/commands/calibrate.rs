//! `sealbench calibrate`: measures this machine's floors, caches them, prints them.

use crate::calibrate::{self, Calibration};
use crate::cli::CalibrateArgs;
use crate::error::{Failure, Outcome};
use crate::output;
use anyhow::anyhow;
use std::process::ExitCode;

/// Runs `sealbench calibrate`.
///
/// # Errors
/// When a floor cannot be measured (no sockets, epoll or timerfd), or `--show` finds no
/// cached calibration for this machine.
pub fn run(args: &CalibrateArgs) -> Outcome {
    let c = if args.show {
        calibrate::cached().ok_or_else(|| {
            Failure::usage(anyhow!(
                "no calibration cached for this machine ({}): run `sealbench calibrate`",
                calibrate::cache_path().map_or_else(|| "no cache directory".to_owned(), |p| p.display().to_string())
            ))
        })?
    } else {
        eprintln!("sealbench calibrate: measuring this machine's floors ({})", calibrate::machine_fingerprint());
        let shapes =
            if args.shape.is_empty() && !args.quick { calibrate::DEFAULT_SHAPES.to_vec() } else { args.shape.clone() };
        let mut c = calibrate::measure_with_shapes(args.quick, &shapes, &mut |what| eprintln!("  measuring {what}…"))?;
        let kept = calibrate::keep_earlier_shapes(&mut c, calibrate::cached());
        if kept > 0 {
            eprintln!("  kept {kept} shape floor(s) from this machine's earlier calibration (each with its own time)");
        }
        match calibrate::store(&c) {
            Ok(path) => eprintln!("cached in {}", path.display()),
            Err(e) => eprintln!("warning: not cached: {e:#}"),
        }
        c
    };
    if args.json {
        output::stdout(&format!("{}\n", serde_json::to_string_pretty(&c).map_err(anyhow::Error::from)?));
    } else {
        output::stdout(&table(&c));
    }
    Ok(ExitCode::SUCCESS)
}

fn table(c: &Calibration) -> String {
    let mut o = format!(
        "this machine's floors ({} calibration, {}; median of {} rounds)\n  {}\n",
        c.kind, c.measured_at, c.rounds, c.machine
    );
    o.push_str(&format!(
        "  loopback TCP hop, unbatched   {:>9.2} µs CPU per message (write + epoll_wait + read, {} B, {} connections; spread {:.0} %)\n",
        c.hop_ns / 1e3,
        calibrate::HOP_BYTES,
        calibrate::HOP_CONNECTIONS,
        c.hop_spread * 100.0
    ));
    o.push_str(&format!(
        "  loopback TCP hop, {} a write  {:>9.2} µs CPU per message\n",
        calibrate::HOP_BATCH,
        c.hop_batched_ns / 1e3
    ));
    o.push_str(&format!("  timer wake-up                 {:>9.2} µs CPU\n", c.timer_wake_ns / 1e3));
    for (backend, ns) in &c.x25519_ns {
        let via = match backend.parse::<sealcore::backend::Backend>() {
            Ok(b) if b.x25519_is_fallback() => format!(" — {}", b.x25519_impl()),
            _ => String::new(),
        };
        o.push_str(&format!("  X25519 ({backend:<10})         {:>9.2} µs CPU{via}\n", ns / 1e3));
    }
    for (backend, ns) in &c.seal_256_ns {
        o.push_str(&format!("  seal 256 B ChaCha20-Poly1305 ({backend}) {:>7.3} µs CPU\n", ns / 1e3));
    }
    for f in &c.shapes {
        let when = f.measured_at.as_ref().map(|t| format!(" (measured {t})")).unwrap_or_default();
        o.push_str(&format!(
            "  shape {} connections @ {} msgs/s (tick {} µs): generator {:.2} µs, relay {:.2} µs CPU per message{when}\n",
            f.connections,
            f.rate,
            f.tick_us,
            f.generator_ns / 1e3,
            f.relay_ns / 1e3
        ));
    }
    o.push_str(
        "a relayed message makes two hops: driver + relay CPU per message ÷ (2 × hop) is how far a run is from the floor\n",
    );
    o
}
