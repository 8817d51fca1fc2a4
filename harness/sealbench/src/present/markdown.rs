//! `matrix.md` and `capacity.md`: the tables a person pastes into a design doc. The
//! tables themselves ([`Table`]) are built from the data once and shown both here and in
//! `report.html`.

use crate::results::capacity::Capacity;
use crate::results::matrix::{Matrix, Spread};
use std::fmt::Write as _;

/// A table as both Markdown and HTML show it: heading cells and rows of cells.
#[derive(Debug, Clone, PartialEq)]
pub struct Table {
    /// Column headings.
    pub header: Vec<String>,
    /// Rows, one cell per column.
    pub rows: Vec<Vec<String>>,
}

impl Table {
    /// The table in Markdown (heading row, separator, rows).
    pub fn markdown(&self) -> String {
        let mut s = String::new();
        let line = |cells: &[String]| format!("| {} |\n", cells.join(" | "));
        s.push_str(&line(&self.header));
        let _ = writeln!(s, "|{}", "---|".repeat(self.header.len()));
        for r in &self.rows {
            s.push_str(&line(r));
        }
        s
    }
}

/// `median (min–max)` of a spread scaled by `scale`, or just the median when the repeats
/// agree; `—` without data.
fn fmt_spread(s: Option<Spread>, scale: f64, digits: usize) -> String {
    match s {
        None => "—".into(),
        Some(s) if (s.max - s.min).abs() < f64::EPSILON => format!("{:.*}", digits, s.median * scale),
        Some(s) => {
            format!("{:.*} ({:.*}–{:.*})", digits, s.median * scale, digits, s.min * scale, digits, s.max * scale)
        }
    }
}

/// The heading of a matrix, `code` quoting the scenario name.
pub fn matrix_heading(m: &Matrix, code: impl Fn(&str) -> String) -> String {
    let sc = &m.scenario;
    format!(
        "sealbench matrix — {}: {} clients, {} B messages, {} repeat(s), median (min–max)",
        code(&sc.name),
        sc.clients.count,
        sc.traffic.size,
        m.repeat
    )
}

/// The table of a matrix: one row per cell.
pub fn matrix_table(m: &Matrix) -> Table {
    let header = [
        "AEAD on backend / pattern / mode (/ transport)",
        "delivered msg/s",
        "e2e p50 ms",
        "e2e p99 ms",
        "e2e p99.9 ms",
        "handshake p99 ms",
        "handshakes/s",
        "handshake bytes",
        "connect p50 / p99 ms",
        "of which TLS p50 / p99 ms",
        "seal ns/msg",
        "open ns/msg",
        "driver CPU ms / 1000 msgs",
        "crypto share of e2e p50",
        "lost",
    ];
    let rows = m
        .cells
        .iter()
        .map(|c| {
            vec![
                format!(
                    "{}{}{}",
                    c.label(),
                    if c.saturated { " ⚠ generator saturated" } else { "" },
                    if c.machine_shared { " ⚠ machine shared" } else { "" }
                ),
                fmt_spread(c.throughput_per_s, 1.0, 0),
                fmt_spread(c.e2e_p50_us, 1e-3, 3),
                fmt_spread(c.e2e_p99_us, 1e-3, 3),
                fmt_spread(c.e2e_p999_us, 1e-3, 3),
                fmt_spread(c.handshake_p99_us, 1e-3, 2),
                fmt_spread(c.handshakes_per_s, 1.0, 0),
                if c.handshake_bytes == 0 { "—".to_owned() } else { c.handshake_bytes.to_string() },
                format!("{} / {}", fmt_spread(c.connect_p50_us, 1e-3, 2), fmt_spread(c.connect_p99_us, 1e-3, 2)),
                format!("{} / {}", fmt_spread(c.tls_p50_us, 1e-3, 2), fmt_spread(c.tls_p99_us, 1e-3, 2)),
                fmt_spread(c.seal_ns, 1.0, 0),
                fmt_spread(c.open_ns, 1.0, 0),
                fmt_spread(c.cpu_ms_per_1000_msgs, 1.0, 2),
                c.crypto_share.map_or("—".into(), |x| format!("{:.1}%", x * 100.0)),
                c.lost.to_string(),
            ]
        })
        .collect();
    Table { header: header.map(String::from).to_vec(), rows }
}

/// What a reader of the matrix table needs to know, one line each, `code` quoting names.
pub fn matrix_notes(code: impl Fn(&str) -> String) -> [String; 3] {
    [
        format!(
            "An UNENCRYPTED row ({} AEAD, {} protocol) is a baseline: the difference to it is what encryption \
             costs. Seal/open are",
            code("none"),
            code("plaintext")
        ),
        "means of the per-message timings sampled inside the runs; driver CPU is the load driver's (relay excluded)."
            .to_owned(),
        format!(
            "A {} row differs from its ws row by TLS alone (rustls; on the embedded relay, a certificate made at \
             start): TLS's cost per message (e2e, CPU) and per connection (connect, of which TLS).",
            code("wss")
        ),
    ]
}

/// `matrix.md`.
pub fn matrix(m: &Matrix) -> String {
    let [a, b, c] = matrix_notes(backticks);
    let mut md = format!("## {}\n\n{}\n{a}\n{b}\n{c}\n", matrix_heading(m, backticks), matrix_table(m).markdown());
    if let Some(t) = stance_table(m) {
        md.push_str(&format!("\n### {STANCES_HEADING}\n\n{}\n{STANCES_NOTE}\n", t.markdown()));
    }
    let verdicts = crate::verdict::matrix::verdicts(m);
    if !verdicts.is_empty() {
        md.push_str("\n### Verdicts: which choice costs least per message\n\n");
        for v in verdicts {
            md.push_str(&format!("- {}\n", v.line));
        }
    }
    md
}

/// The heading of the stances table.
pub const STANCES_HEADING: &str = "The relay's stances: reading and scanning, end-to-end encrypted, franked";
/// What the stances table says, in one line.
pub const STANCES_NOTE: &str = "Same seeded workload in every row. Relay CPU is the embedded relay's per message sent \
     (steady window); bytes are what clients sent per message (headers, E2E body, franking; handshakes and reports \
     included); scan, stamp and report verify are the relay's, frank the sender's; reports are sent / verified.";

/// The stances table of a matrix (a row per cell), when some cell reads or franks.
pub fn stance_table(m: &Matrix) -> Option<Table> {
    if !m.cells.iter().filter_map(|c| c.stance.as_ref()).any(crate::results::stance::Stance::telling) {
        return None;
    }
    let header = [
        "cell",
        "stance",
        "relay CPU µs/msg",
        "e2e p50 ms",
        "e2e p99 ms",
        "bytes on the wire / msg",
        "scan µs",
        "frank ns",
        "stamp µs",
        "report verify µs",
        "reports",
        "what the relay could see",
    ];
    let rows = m
        .cells
        .iter()
        .filter_map(|c| c.stance.as_ref().map(|s| (c, s)))
        .map(|(c, s)| {
            vec![
                c.label(),
                s.name.clone(),
                fmt_spread(s.relay_cpu_us_per_msg, 1.0, 2),
                fmt_spread(c.e2e_p50_us, 1e-3, 3),
                fmt_spread(c.e2e_p99_us, 1e-3, 3),
                fmt_spread(s.wire_bytes_per_msg, 1.0, 0),
                fmt_spread(s.scan_us, 1.0, 2),
                fmt_spread(s.frank_ns, 1.0, 0),
                fmt_spread(s.stamp_us, 1.0, 2),
                fmt_spread(s.report_verify_us, 1.0, 2),
                if s.reports.0 == 0 { "—".to_owned() } else { format!("{} / {}", s.reports.0, s.reports.1) },
                s.sees.clone(),
            ]
        })
        .collect();
    Some(Table { header: header.map(String::from).to_vec(), rows })
}

/// The heading of a capacity search, `code` quoting the scenario name.
pub fn capacity_heading(c: &Capacity, code: impl Fn(&str) -> String) -> String {
    format!("sealbench capacity — {}, SLO: {}", code(&c.scenario.name), c.slos.join(" and "))
}

/// The table of a capacity search: one row per step.
pub fn capacity_table(c: &Capacity) -> Table {
    let what = if c.search == "clients" { "clients" } else { "offered msg/s" };
    let header = [
        "step",
        what,
        "delivered msg/s",
        "e2e p50 ms",
        "e2e p99 ms",
        "e2e p99.9 ms",
        "lost",
        "relay µs CPU/msg",
        "relay msg/s per core",
        "SLO",
        "generator",
    ];
    let ms = |v: Option<f64>| v.map_or("—".into(), |u| format!("{:.3}", u / 1e3));
    let rows = c
        .steps
        .iter()
        .map(|st| {
            vec![
                st.index.to_string(),
                format!("{:.0}", st.offered),
                format!("{:.0}", st.delivered_per_s),
                ms(st.e2e_p50_us),
                ms(st.e2e_p99_us),
                ms(st.e2e_p999_us),
                st.lost.to_string(),
                st.relay_cpu_us_per_msg.map_or("—".into(), |c| format!("{c:.1}")),
                st.relay_msgs_per_core_s.map_or("—".into(), |c| format!("{c:.0}")),
                if st.pass { "met" } else { "broken" }.to_owned(),
                if st.saturated { "SATURATED" } else { "ok" }.to_owned(),
            ]
        })
        .collect();
    Table { header: header.map(String::from).to_vec(), rows }
}

/// `capacity.md`: the heading, the conclusion and the step table.
pub fn capacity(c: &Capacity) -> String {
    let fleet = c.fleet.as_ref().map_or_else(
        || "Relay CPU not measured (an external relay without `--relay-metrics`): no per-core figure.\n\n".to_owned(),
        |f| format!("Fleet: {f}.\n\n"),
    );
    format!("## {}\n\n**{}**\n\n{fleet}{}", capacity_heading(c, backticks), c.conclusion, capacity_table(c).markdown())
}

fn backticks(s: &str) -> String {
    format!("`{s}`")
}
