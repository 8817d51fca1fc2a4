//! A matrix's verdict per dimension: of the choices one dimension offers (AEADs, backends,
//! patterns, modes, transports, protocols, franking), which costs least per message, by how
//! much, and whether that difference is beyond the repeats' spread — the answer to "which
//! should we ship?", with its caveat. Pure: it reads the cells and decides.
//!
//! A choice's figure is the median, over the cells that have it, of each cell's median
//! driver CPU per message; its range is the union of those cells' (min, max) over repeats.
//! The cheapest choice wins *beyond the spread* only when its range lies wholly below the
//! runner-up's; otherwise the difference is within the repeats' noise and the verdict says
//! so. The UNENCRYPTED `none` AEAD and the `plaintext` protocol are baselines, never
//! recommended.

use crate::results::matrix::{Cell, Matrix, Spread};

/// One dimension's verdict.
#[derive(Debug, Clone, PartialEq)]
pub struct DimensionVerdict {
    /// The dimension (`aead`, `backend`, …).
    pub dimension: &'static str,
    /// The cheapest choice per message.
    pub cheapest: String,
    /// Its driver CPU per message, µs (median over its cells).
    pub cpu_us: f64,
    /// The runner-up and its figure.
    pub runner_up: (String, f64),
    /// The cheapest choice's range lies wholly below the runner-up's.
    pub beyond_spread: bool,
    /// The one-line recommendation, with its caveat.
    pub line: String,
}

type Key = fn(&Cell) -> String;

/// The dimensions a matrix may vary, and how to read each from a cell.
const DIMENSIONS: [(&str, Key); 7] = [
    ("aead", |c| c.aead.clone()),
    ("backend", |c| c.backend.clone()),
    ("pattern", |c| c.pattern.clone()),
    ("mode", |c| c.mode.clone()),
    ("transport", |c| c.transport.clone()),
    ("protocol", |c| c.protocol.clone()),
    ("franking", |c| if c.franking { "on".into() } else { "off".into() }),
];

/// Baselines: shown, never recommended.
fn baseline(dimension: &str, choice: &str) -> bool {
    (dimension == "aead" && choice == "none") || (dimension == "protocol" && choice == "plaintext")
}

/// Why a difference in driver CPU per message cannot be trusted, if it cannot: some run
/// of the two choices shared the machine with other processes (their load moves CPU per
/// message by more than a cipher choice does: seen here, 12 µs between two AEADs whose
/// whole seal + open took 3.3 µs), or the cheapest choice's worst repeat was cheaper than
/// the UNENCRYPTED baseline's best (encryption cannot cost less than none: the spread is
/// noise). `best_max` is the cheapest choice's highest repeat.
fn doubt(m: &Matrix, dimension: &str, key: Key, compared: [&String; 2], best_max: f64) -> Option<String> {
    let of = |c: &&Cell| compared.contains(&&key(c));
    if m.cells.iter().filter(of).any(|c| c.machine_shared) {
        return Some("other processes shared the machine during some of their runs (⚠)".to_owned());
    }
    let base = m.cells.iter().filter(|c| baseline(dimension, &key(c))).filter_map(|c| c.cpu_ms_per_1000_msgs);
    let base_min = base.map(|s| s.min).fold(f64::INFINITY, f64::min);
    (base_min.is_finite() && best_max < base_min).then(|| {
        format!(
            "{} measured cheaper in every repeat than the unencrypted baseline's cheapest ({base_min:.2} µs), which \
             cannot hold: the spread is noise",
            compared[0]
        )
    })
}

/// The verdict of every dimension with two choices or more (baselines aside).
pub fn verdicts(m: &Matrix) -> Vec<DimensionVerdict> {
    DIMENSIONS.iter().filter_map(|&(dimension, key)| verdict(m, dimension, key)).collect()
}

fn verdict(m: &Matrix, dimension: &'static str, key: Key) -> Option<DimensionVerdict> {
    let mut choices: Vec<(String, Vec<&Spread>)> = Vec::new();
    for c in &m.cells {
        let choice = key(c);
        if baseline(dimension, &choice) {
            continue;
        }
        let Some(cpu) = c.cpu_ms_per_1000_msgs.as_ref() else { continue };
        match choices.iter_mut().find(|(k, _)| *k == choice) {
            Some((_, v)) => v.push(cpu),
            None => choices.push((choice, vec![cpu])),
        }
    }
    if choices.len() < 2 {
        return None;
    }
    let mut ranked: Vec<(String, f64, f64, f64)> = choices
        .into_iter()
        .map(|(k, spreads)| {
            let mut med: Vec<f64> = spreads.iter().map(|s| s.median).collect();
            med.sort_by(f64::total_cmp);
            let median = med[med.len() / 2];
            let lo = spreads.iter().map(|s| s.min).fold(f64::INFINITY, f64::min);
            let hi = spreads.iter().map(|s| s.max).fold(f64::NEG_INFINITY, f64::max);
            (k, median, lo, hi)
        })
        .collect();
    ranked.sort_by(|a, b| a.1.total_cmp(&b.1));
    let (best, second) = (&ranked[0], &ranked[1]);
    let less = if second.1 > 0.0 { 100.0 * (second.1 - best.1) / second.1 } else { 0.0 };
    let doubt = doubt(m, dimension, key, [&best.0, &second.0], best.3);
    let beyond = best.3 < second.2 && doubt.is_none();
    let line = if let Some(why) = doubt {
        format!(
            "{dimension}: not judged — {} {:.2} µs vs {} {:.2} µs driver CPU per message ({less:.0} % apart), but \
             {why}; rerun on a quiet machine",
            best.0, best.1, second.0, second.1
        )
    } else if beyond {
        format!(
            "{dimension}: ship {} — {:.2} µs driver CPU per message, {less:.0} % less than {} ({:.2} µs), beyond the \
             spread of {} repeat(s); caveat: this machine, this load, driver side only",
            best.0, best.1, second.0, second.1, m.repeat
        )
    } else {
        format!(
            "{dimension}: no clear winner — {} {:.2} µs vs {} {:.2} µs driver CPU per message ({less:.0} % apart) is \
             within the spread of {} repeat(s); choose on other grounds, or repeat more",
            best.0, best.1, second.0, second.1, m.repeat
        )
    };
    Some(DimensionVerdict {
        dimension,
        cheapest: best.0.clone(),
        cpu_us: best.1,
        runner_up: (second.0.clone(), second.1),
        beyond_spread: beyond,
        line,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spread(median: f64, min: f64, max: f64) -> Option<Spread> {
        Some(Spread { median, min, max })
    }

    fn matrix(cells: Vec<(&str, Option<Spread>)>) -> Matrix {
        use crate::results::matrix::fixture;
        fixture::matrix(
            cells.into_iter().map(|(aead, cpu)| Cell { cpu_ms_per_1000_msgs: cpu, ..fixture::cell(aead) }).collect(),
        )
    }

    #[test]
    fn the_cheapest_choice_wins_only_beyond_the_spread_and_baselines_never_win() {
        let m = matrix(vec![
            ("none", spread(10.0, 9.0, 11.0)),
            ("chacha20-poly1305", spread(30.0, 29.0, 31.0)),
            ("aes-256-gcm", spread(25.0, 24.0, 26.0)),
        ]);
        let v = verdicts(&m);
        let aead = v.iter().find(|d| d.dimension == "aead").expect("an aead verdict");
        assert_eq!(aead.cheapest, "aes-256-gcm", "the none baseline is never recommended");
        assert!(aead.beyond_spread && aead.line.contains("ship aes-256-gcm"), "{}", aead.line);
        // Overlapping ranges: no winner is named.
        let m =
            matrix(vec![("chacha20-poly1305", spread(30.0, 24.0, 33.0)), ("aes-256-gcm", spread(28.0, 25.0, 32.0))]);
        let aead = verdicts(&m).into_iter().find(|d| d.dimension == "aead").expect("an aead verdict");
        assert!(!aead.beyond_spread && aead.line.contains("no clear winner"), "{}", aead.line);
        // A shared machine, or a choice cheaper than no encryption at all: not judged.
        let mut m =
            matrix(vec![("chacha20-poly1305", spread(48.0, 47.3, 53.1)), ("aes-256-gcm", spread(35.8, 35.1, 46.3))]);
        m.cells[1].machine_shared = true;
        let aead = verdicts(&m).into_iter().find(|d| d.dimension == "aead").expect("an aead verdict");
        assert!(!aead.beyond_spread && aead.line.contains("not judged"), "{}", aead.line);
        let m = matrix(vec![
            ("none", spread(44.7, 36.4, 46.7)),
            ("chacha20-poly1305", spread(48.0, 47.3, 53.1)),
            ("aes-256-gcm", spread(30.8, 30.1, 32.3)),
        ]);
        let aead = verdicts(&m).into_iter().find(|d| d.dimension == "aead").expect("an aead verdict");
        assert!(!aead.beyond_spread && aead.line.contains("cannot hold"), "{}", aead.line);
        // One choice: no verdict for that dimension.
        assert!(verdicts(&matrix(vec![("aes-256-gcm", spread(1.0, 1.0, 1.0))])).is_empty());
    }
}
