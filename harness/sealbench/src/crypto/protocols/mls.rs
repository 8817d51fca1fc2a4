//! MLS's figures at each group size: creating the group by adding every other member in
//! one commit, processing the Welcome, a self-update commit (creating it, and one member
//! processing it), adding and removing one member, and application messages.

use super::{MESSAGE_SIZE, Progress, ProtocolPlan, ProtocolRow, clock, each, of_each, push_pair};
use anyhow::{Result, anyhow};
use sealproto::Protocol;
use sealproto::mls::MlsMember;

/// Members that join through the Welcome and process commits (the others' state is not
/// needed to measure the committer's and one receiver's costs).
const JOINERS: usize = 3;
const BATCH: usize = 200;

fn e(err: sealproto::ProtoError) -> anyhow::Error {
    anyhow!("mls: {err}")
}

fn id(k: usize) -> [u8; 8] {
    (k as u64 + 1).to_le_bytes()
}

fn samples(plan: &ProtocolPlan, n: usize) -> usize {
    if n >= 200 { plan.samples.min(2) } else { plan.samples }
}

pub(super) fn run(plan: &ProtocolPlan, progress: &mut dyn Progress, rows: &mut Vec<ProtocolRow>) -> Result<()> {
    progress.step("protocol mls: key package, application messages");
    let probe = MlsMember::new(b"probe").map_err(e)?;
    let mut kp_len = 0;
    let kp = each(plan.samples * 4, || {
        let (r, t) = clock(|| probe.key_package(false));
        kp_len = r.map_err(e)?.len();
        Ok(t)
    })?;
    rows.push(ProtocolRow::new(Protocol::Mls, "key_package_create", None, kp, Some(kp_len)));
    for &n in &plan.group_sizes {
        progress.step(&format!("protocol mls: group of {n}"));
        group_size(plan, n, rows)?;
    }
    Ok(())
}

/// Every figure of a group of `n`: its creation and Welcome, then commits and application
/// messages in the group kept from the last sample.
fn group_size(plan: &ProtocolPlan, n: usize, rows: &mut Vec<ProtocolRow>) -> Result<()> {
    let mut members = create_and_join(plan, n, rows)?;
    self_updates(plan, n, &mut members, rows)?;
    add_and_remove(plan, n, &mut members, rows)?;
    application_messages(plan, n, &mut members, rows)
}

/// The group created with every other member added in one commit, and the Welcome
/// processed by [`JOINERS`] of them; returns the creator and the joiners of the last sample.
fn create_and_join(plan: &ProtocolPlan, n: usize, rows: &mut Vec<ProtocolRow>) -> Result<Vec<MlsMember>> {
    let (mut create_t, mut welcome_t) = (Vec::new(), Vec::new());
    let mut welcome_len = 0;
    let mut kept = None;
    for s in 0..samples(plan, n) {
        let mut members: Vec<MlsMember> =
            (0..n).map(|k| MlsMember::new(&id(k))).collect::<Result<_, _>>().map_err(e)?;
        let kps: Vec<Vec<u8>> =
            members[1..].iter().map(|m| m.key_package(false)).collect::<Result<_, _>>().map_err(e)?;
        let refs: Vec<&[u8]> = kps.iter().map(Vec::as_slice).collect();
        let group_id = format!("bench-{n}-{s}");
        let (c, t) = clock(|| members[0].create_group(group_id.as_bytes(), &refs));
        let c = c.map_err(e)?;
        create_t.push(t);
        let welcome = c.welcome.ok_or_else(|| anyhow!("mls: no Welcome"))?;
        welcome_len = welcome.len();
        for m in members.iter_mut().skip(1).take(JOINERS) {
            let (r, t) = clock(|| m.join(&welcome));
            r.map_err(e)?;
            welcome_t.push(t);
        }
        members.truncate(JOINERS + 1);
        kept = Some(members);
    }
    rows.push(ProtocolRow::new(Protocol::Mls, "group_create_add_all", Some(n), of_each(&create_t), Some(welcome_len)));
    rows.push(ProtocolRow::new(Protocol::Mls, "welcome_process", Some(n), of_each(&welcome_t), Some(welcome_len)));
    kept.ok_or_else(|| anyhow!("mls: no group"))
}

/// Self-update commits by the creator, processed by every joined member.
fn self_updates(plan: &ProtocolPlan, n: usize, members: &mut [MlsMember], rows: &mut Vec<ProtocolRow>) -> Result<()> {
    let (mut create_t, mut process_t) = (Vec::new(), Vec::new());
    let mut commit_len = 0;
    for _ in 0..plan.samples {
        let (c, t) = clock(|| members[0].self_update());
        let c = c.map_err(e)?;
        create_t.push(t);
        commit_len = c.commit.len();
        for m in members.iter_mut().skip(1) {
            let (r, t) = clock(|| m.process(&c.commit));
            r.map_err(e)?;
            process_t.push(t);
        }
    }
    rows.push(ProtocolRow::new(
        Protocol::Mls,
        "commit_create_self_update",
        Some(n),
        of_each(&create_t),
        Some(commit_len),
    ));
    rows.push(ProtocolRow::new(Protocol::Mls, "commit_process", Some(n), of_each(&process_t), None));
    Ok(())
}

/// One member added, then removed again (each a commit the others process).
fn add_and_remove(plan: &ProtocolPlan, n: usize, members: &mut [MlsMember], rows: &mut Vec<ProtocolRow>) -> Result<()> {
    let (mut add_t, mut remove_t) = (Vec::new(), Vec::new());
    let (mut add_len, mut remove_len) = (0, 0);
    for k in 0..plan.samples {
        let newcomer = MlsMember::new(&id(10_000 + k)).map_err(e)?;
        let kp = newcomer.key_package(false).map_err(e)?;
        let (c, t) = clock(|| members[0].add(&[&kp]));
        let c = c.map_err(e)?;
        add_t.push(t);
        add_len = c.commit.len();
        for m in members.iter_mut().skip(1) {
            m.process(&c.commit).map_err(e)?;
        }
        let (c, t) = clock(|| members[0].remove(&[&id(10_000 + k)]));
        let c = c.map_err(e)?;
        remove_t.push(t);
        remove_len = c.commit.len();
        for m in members.iter_mut().skip(1) {
            m.process(&c.commit).map_err(e)?;
        }
    }
    rows.push(ProtocolRow::new(Protocol::Mls, "commit_create_add_one", Some(n), of_each(&add_t), Some(add_len)));
    rows.push(ProtocolRow::new(
        Protocol::Mls,
        "commit_create_remove_one",
        Some(n),
        of_each(&remove_t),
        Some(remove_len),
    ));
    Ok(())
}

/// Application messages from the creator to one member.
fn application_messages(
    plan: &ProtocolPlan,
    n: usize,
    members: &mut [MlsMember],
    rows: &mut Vec<ProtocolRow>,
) -> Result<()> {
    let pt = [0x5au8; MESSAGE_SIZE];
    let mut msgs: Vec<Vec<u8>> = (0..BATCH).map(|_| Vec::with_capacity(512)).collect();
    let (mut enc, mut dec) = (Vec::new(), Vec::new());
    let (first, rest) = members.split_at_mut(1);
    for _ in 0..plan.budget.samples.max(1) {
        let (r, te) = clock(|| -> Result<()> {
            for m in &mut msgs {
                m.clear();
                first[0].encrypt(&pt, m).map_err(e)?;
            }
            Ok(())
        });
        r?;
        let (r, td) = clock(|| -> Result<()> {
            for m in &msgs {
                rest[0].process(m).map_err(e)?;
            }
            Ok(())
        });
        r?;
        enc.push((te, BATCH as u64));
        dec.push((td, BATCH as u64));
    }
    push_pair(rows, Protocol::Mls, ("app_encrypt", "app_decrypt"), Some(n), [&enc, &dec], msgs[0].len());
    Ok(())
}
