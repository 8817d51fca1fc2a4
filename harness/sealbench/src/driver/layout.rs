//! How a scenario is laid out over shards: pairing (adjacent or a seeded shuffle), keys,
//! source addresses, and where the relay is.

use super::conversation::Conversation;
use super::wire::Side;
use super::{ClientSpec, RunOptions, ShardSpec, client, schedule};
use crate::scenario::{Plan, WsUrl};
use anyhow::{Context, Result, anyhow, bail};
use sealcore::StaticKeypair;
use std::net::SocketAddr;
use std::sync::Arc;

/// Resolves the relay's host (once per run).
pub(super) fn resolve(url: &WsUrl) -> Result<SocketAddr> {
    use std::net::ToSocketAddrs;
    let hostport = url.host_port();
    let url = &url.url;
    let addr = hostport
        .to_socket_addrs()
        .with_context(|| format!("relay.url {url}: cannot resolve `{hostport}`"))?
        .find(SocketAddr::is_ipv4)
        .ok_or_else(|| anyhow!("relay.url {url}: no IPv4 address"))?;
    if !addr.ip().is_loopback() {
        bail!("relay.url {url}: load tests target loopback only (127.0.0.0/8)");
    }
    Ok(addr)
}

/// Deals the conversations out to `shards` shards (both ends of each in one shard).
pub(super) fn build_shards(
    plan: &Arc<Plan>,
    shards: usize,
    target: &client::Target,
    options: &RunOptions,
) -> Result<Vec<ShardSpec>> {
    let scenario = &plan.scenario;
    let n = scenario.clients.count;
    let mut order: Vec<usize> = (0..n).collect();
    if plan.random_pairing() {
        let mut rng = schedule::Rng::new(scenario.seed, 0xC0FFEE);
        for i in (1..n).rev() {
            let j = (rng.next_u64() % (i as u64 + 1)) as usize;
            order.swap(i, j);
        }
    }
    let suite = plan.suite;
    let needs_static = [suite.pattern.initiator_has_static(), suite.pattern.responder_has_static()];
    let publish = suite.pattern.needs_remote_static();
    let mut specs: Vec<ShardSpec> = (0..shards)
        .map(|index| ShardSpec {
            index,
            plan: plan.clone(),
            target: target.clone(),
            clients: Vec::new(),
            convs: Vec::new(),
            connect_rate: scenario.clients.connect_rate / shards as f64,
            seed: scenario.seed,
            warmup_ns: plan.warmup_ns(),
            duration_ns: plan.measured_ns(),
            sending_ns: plan.sending_ns(),
            cooldown_ns: scenario.cooldown.as_nanos() as u64,
            ack: scenario.relay.ack,
            stall: if index == 0 {
                options.stall.map(|(a, l)| (a.as_nanos() as u64 + plan.warmup_ns(), l.as_nanos() as u64))
            } else {
                None
            },
        })
        .collect();
    for c in 0..n / 2 {
        let spec = &mut specs[c % shards];
        let ids = [order[2 * c] as u64 + 1, order[2 * c + 1] as u64 + 1];
        let mut keys: [Option<StaticKeypair>; 2] = [None, None];
        for i in 0..2 {
            if needs_static[i] {
                keys[i] = Some(StaticKeypair::generate().map_err(|e| anyhow!("generating keys: {e}"))?);
            }
        }
        let local = spec.convs.len();
        let (ci, cr) = (spec.clients.len(), spec.clients.len() + 1);
        for (side, &id) in Side::BOTH.iter().zip(&ids) {
            let side = *side;
            let key = if side == Side::Responder && publish { keys[1].as_ref().map(|k| k.public) } else { None };
            spec.clients.push(ClientSpec {
                id,
                conv: local,
                side,
                source: plan.sources[(id as usize) % plan.sources.len()],
                publish_key: key,
            });
        }
        spec.convs.push(Conversation::new(c as u32, ci, cr, ids, suite, plan.mode, keys));
    }
    Ok(specs)
}
