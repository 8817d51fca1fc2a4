//! How a run's population is laid out over shards: whole conversations per shard, their
//! devices and pairwise sessions, keys, source addresses, and where the relay is.

use super::protocol::Conversation;
use super::wire::group_id;
use super::{ChatSpec, ClientSpec, RunOptions, ShardSpec, client};
use crate::scenario::population::{Chat, ChatKind};
use crate::scenario::{Fanout, Plan, WsUrl};
use anyhow::{Context, Result, anyhow};
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
        .ok_or_else(|| anyhow!("relay.url {url}: `{hostport}` has no IPv4 address (clients connect over IPv4)"))?;
    Ok(addr)
}

/// Deals whole conversations out to `shards` shards (every device of a conversation in
/// one shard), the least-loaded shard (by devices) first; lays out each conversation's
/// pairwise sessions and the devices' static keys.
pub(super) fn build_shards(
    plan: &Arc<Plan>,
    shards: usize,
    target: &client::Target,
    options: &RunOptions,
) -> Result<Vec<ShardSpec>> {
    let scenario = &plan.scenario;
    let mut specs: Vec<ShardSpec> = (0..shards)
        .map(|index| ShardSpec {
            index,
            plan: plan.clone(),
            target: target.clone(),
            clients: Vec::new(),
            convs: Vec::new(),
            chats: Vec::new(),
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
    let mut load = vec![0usize; shards];
    let mut next_session = 0u32;
    let parts = plan.chat_parts();
    for (i, chat) in plan.population.chats.iter().enumerate() {
        if !plan.runs(&parts, i) {
            continue; // another process of a split run has it
        }
        let shard = (0..shards).min_by_key(|&i| (load[i], i)).unwrap_or(0);
        let spec = &mut specs[shard];
        load[shard] += plan.population.device_count(chat) as usize;
        lay_out_chat(plan, chat, spec, &mut next_session)?;
    }
    for spec in &mut specs {
        // Sessions are found by id when a message arrives (binary search).
        spec.convs.sort_by_key(|c| c.id);
    }
    Ok(specs)
}

/// Adds one conversation to a shard: its devices (clients), its sessions, its record.
fn lay_out_chat(plan: &Plan, chat: &Chat, spec: &mut ShardSpec, next_session: &mut u32) -> Result<()> {
    let pop = &plan.population;
    let suite = plan.suite;
    let roles = [suite.pattern.initiator_has_static(), suite.pattern.responder_has_static()];
    let needs_static = roles[0] || roles[1];
    let publish = suite.pattern.needs_remote_static();
    let local_chat = spec.chats.len();
    let first_client = spec.clients.len();
    let mut users = Vec::with_capacity(chat.users.len());
    let mut keys = Vec::new();
    for &u in &chat.users {
        let user = &pop.users[u as usize];
        let start = spec.clients.len() - first_client;
        for d in user.device_range() {
            let key = if needs_static {
                Some(StaticKeypair::generate().map_err(|e| anyhow!("generating keys: {e}"))?)
            } else {
                None
            };
            let id = u64::from(d) + 1;
            spec.clients.push(ClientSpec {
                id,
                chat: local_chat,
                pos: spec.clients.len() - first_client,
                source: plan.sources[(id as usize) % plan.sources.len()],
                publish_key: if publish { key.as_ref().map(|k| k.public) } else { None },
                group: matches!(chat.kind, ChatKind::Group { fanout: Fanout::Relay, .. }).then(|| group_id(chat.id)),
                churns: user.churns,
            });
            keys.push(key);
        }
        users.push(start..spec.clients.len() - first_client);
    }
    let devices = spec.clients.len() - first_client;
    let sending = users[..chat.senders as usize].last().map_or(0, |r| r.end);
    // A session between every sending device and every other device of the conversation
    // (the lower position initiates).
    let mut sessions = Vec::new();
    // Some protocols' groups need no pairwise sessions (MLS: key packages, Welcome and
    // commits go through the relay's key directory and group fan-out).
    let no_pairwise =
        !plan.protocol.pairwise_in_groups() && matches!(chat.kind, ChatKind::Group { fanout: Fanout::Relay, .. });
    for a in (0..devices).filter(|_| !no_pairwise) {
        for b in a + 1..devices {
            if a >= sending && b >= sending {
                continue;
            }
            let id = *next_session;
            *next_session += 1;
            let (ca, cb) = (first_client + a, first_client + b);
            let ids = [spec.clients[ca].id, spec.clients[cb].id];
            let pair = [keys[a].clone().filter(|_| roles[0]), keys[b].clone().filter(|_| roles[1])];
            let local = spec.convs.len();
            spec.convs.push(Conversation::new(id, ca, cb, ids, suite, plan.mode, pair));
            sessions.push((a, b, local));
        }
    }
    spec.chats.push(ChatSpec { id: chat.id, kind: chat.kind, first_client, users, sending, sessions });
    Ok(())
}
