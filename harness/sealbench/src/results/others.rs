//! Whether a run had its machine to itself: other processes on it (or the hypervisor's
//! other guests) and the CPU they used while the run sent, as its summary records them.
//! A fact about the run that every result kind reports beside its figures (a matrix
//! cell, a capacity step, the saturation verdict, the console and the report).

use super::summary::Summary;

/// Share of the machine's cores that other processes (and the hypervisor's other guests)
/// must have used while sending before the verdict names them.
pub const OTHERS_SHARE: f64 = 0.1;

/// Other processes on this machine (or the hypervisor's other guests) used at least
/// [`OTHERS_SHARE`] of its cores while sending: the generator did not have the machine to
/// itself, and its schedule lag and the latencies include waiting for them.
pub fn other_work(s: &Summary) -> Option<String> {
    let g = &s.generator;
    let cores = s.header.provenance.cores.max(1) as f64;
    let (others, steal) = (g.others_cores.unwrap_or(0.0), g.steal_cores.unwrap_or(0.0));
    if others + steal < (OTHERS_SHARE * cores).max(0.1) {
        return None;
    }
    let steal =
        if steal >= 0.05 { format!(" and the hypervisor gave {steal:.2} to other guests") } else { String::new() };
    let relay = if relay_on_loopback(&s.relay) { " (the external relay on this machine among them)" } else { "" };
    Some(format!(
        "other processes{relay} used {others:.2} of this machine's {cores:.0} cores while sending{steal}: the \
         generator did not have the machine to itself, and its lag and these latencies include waiting for them"
    ))
}

/// Whether `relay` (a summary's relay: a `ws://`/`wss://` URL, or `embedded (…)`) is an
/// external relay on a loopback address, i.e. one of the other processes on this machine.
fn relay_on_loopback(relay: &str) -> bool {
    use tokio_tungstenite::tungstenite::http::Uri;
    let Some(host) = relay.parse::<Uri>().ok().and_then(|u| u.host().map(str::to_owned)) else { return false };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost") || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}
