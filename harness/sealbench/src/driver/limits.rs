//! Before anything connects: does the run fit this machine? The driver and an embedded
//! relay share one process's open-file limit (two sockets per client), and each source
//! address has a bounded number of ephemeral ports towards one relay address.

use crate::relay::config::open_file_limit;
use crate::scenario::{Plan, RelayTarget};
use anyhow::{Result, bail};

/// Files kept free for everything that is not a client socket.
pub const RESERVE: u64 = 128;

/// The local ephemeral port range (from `/proc/sys/net/ipv4/ip_local_port_range`).
pub fn ephemeral_ports() -> u64 {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| {
            let mut it = s.split_whitespace().filter_map(|v| v.parse::<u64>().ok());
            Some(it.next()?..=it.next()?)
        })
        .map(|r| r.end() - r.start() + 1)
        .unwrap_or(28_232)
}

/// Refuses, with what to change, a run that would run out of files or ports halfway.
///
/// # Errors
/// When `clients.count` does not fit.
pub fn check(plan: &Plan) -> Result<()> {
    let n = plan.local().1 as u64;
    let limit = open_file_limit();
    let hard = crate::relay::config::open_file_hard_limit();
    // sealbench raises its soft limit to the hard one at start: past that, only the
    // administrator can help.
    let raise = if hard == Some(limit) {
        " (its hard limit: an administrator can raise it, e.g. `ulimit -Hn` as root or /etc/security/limits.conf)"
    } else {
        ""
    };
    let embedded = plan.scenario.relay.url == RelayTarget::Embedded;
    let per_client = if embedded { 2 } else { 1 };
    let need = n * per_client + RESERVE;
    if need > limit {
        let max = (limit.saturating_sub(RESERVE)) / per_client;
        if embedded {
            bail!(
                "clients.count = {n} needs about {need} open files here (the driver and the embedded relay share one \
                 process: 2 sockets per client), but this process may open {limit}{raise}. Run the relay as its own process \
                 (`sealbench relay --listen 127.0.0.1:9000`, then --relay ws://127.0.0.1:9000) to halve that, or \
                 lower clients.count to at most {max}."
            );
        }
        bail!(
            "clients.count = {n} needs about {need} open files (one socket per client) but this process may open \
             {limit}{raise}: lower clients.count to at most {max}, or split the clients over several driver processes."
        );
    }
    let ports = ephemeral_ports();
    let per_source = n.div_ceil(plan.sources.len() as u64);
    // Leave headroom for sockets in TIME_WAIT and other programs.
    let usable = ports * 9 / 10;
    if per_source > usable {
        let needed = n.div_ceil(usable);
        bail!(
            "clients.count = {n} over {} source address(es) is {per_source} connections per address, but one address \
             has about {ports} ephemeral ports towards the relay: add source addresses (e.g. \
             clients.source_addresses = [\"127.0.0.1-127.0.0.{}\"]) — at least {needed} are needed.",
            plan.sources.len(),
            needed.min(254)
        );
    }
    Ok(())
}
