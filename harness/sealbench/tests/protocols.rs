//! `crypto.protocol` end to end, in process, against the embedded relay on loopback: Olm
//! sessions set up from keys claimed from the relay's directory, then traffic, with every
//! message accounted for. Small and bounded: a few dozen clients for a few seconds.
#![cfg(all(feature = "olm", feature = "megolm"))]

use sealbench::driver::recorder::Metric;
use sealbench::driver::{self, RunOptions};
use sealbench::scenario::{Plan, Scenario};

type TestResult = Result<(), Box<dyn std::error::Error + Send + Sync>>;

fn run(text: &str) -> Result<(Plan, driver::Outcome), Box<dyn std::error::Error + Send + Sync>> {
    let plan = Plan::new(Scenario::parse(text, "test.toml", &[])?)?;
    let outcome = driver::run(&plan, &RunOptions::default(), |_, _| {})?;
    Ok((plan, outcome))
}

fn olm(senders: &str, extra: &str) -> String {
    format!(
        "name = \"olm\"\nseed = 3\nduration = \"2s\"\nwarmup = \"500ms\"\ncooldown = \"2s\"\n\
         [clients]\ncount = 40\n{extra}\
         [crypto]\nprotocol = \"olm\"\n\
         [traffic]\nrate = 40\nsize = 128\nsenders = \"{senders}\"\n"
    )
}

fn every_message_delivered(o: &driver::Outcome, sessions: u64) {
    let c = &o.counters;
    assert_eq!((c.handshakes_ok, c.handshakes_failed), (sessions, 0), "{c:?}");
    assert!(c.messages > 100, "{c:?}");
    assert_eq!(c.delivered, c.sent, "every copy delivered: {c:?}");
    assert_eq!((c.lost(), c.duplicated, c.auth_failed, c.malformed, c.not_ready, c.too_old), (0, 0, 0, 0, 0, 0));
    assert_eq!(o.total.get(Metric::Handshake).len(), sessions, "one session set-up recorded per session");
    assert!(!o.total.get(Metric::E2e).is_empty());
}

#[test]
fn olm_pairs_set_up_from_claimed_keys_and_deliver_every_message_ping_pong_and_one_way() -> TestResult {
    for senders in ["alternating", "initiator"] {
        let (plan, o) = run(&olm(senders, ""))?;
        assert_eq!(plan.conversations(), 20);
        every_message_delivered(&o, 20);
    }
    Ok(())
}

#[test]
fn olm_client_fanout_groups_set_up_a_session_per_device_pair_even_past_the_one_time_keys() -> TestResult {
    // Groups of 10 where everyone sends: a device answers up to 9 sessions, more than its
    // first batch of one-time keys (8): the last claims get the fallback key or a topped-up
    // key, and every session still comes up.
    let extra = "[conversations]\nkind = \"groups\"\nfanout = \"client\"\ngroup_senders = 10\n\
                 group_sizes = [{ size = 10, weight = 1 }]\n";
    let (plan, o) = run(&olm("alternating", extra))?;
    assert_eq!(plan.conversations(), 4);
    every_message_delivered(&o, 4 * 45);
    Ok(())
}

fn megolm(rotate_after: u32) -> String {
    format!(
        "name = \"megolm\"\nseed = 4\nduration = \"2s\"\nwarmup = \"500ms\"\ncooldown = \"2s\"\n\
         [clients]\ncount = 40\n\
         [conversations]\nkind = \"groups\"\nfanout = \"relay\"\ngroup_senders = 3\n\
         group_sizes = [{{ size = 10, weight = 1 }}]\n\
         [crypto]\nprotocol = \"megolm\"\nmegolm_rotate_after = {rotate_after}\n\
         [traffic]\nrate = 50\narrival = \"poisson\"\nsize = 100\n"
    )
}

#[test]
fn megolm_groups_fan_out_at_the_relay_and_rotate_without_losing_a_message() -> TestResult {
    // Rotation every 5 messages of a sender: a dozen rotations per sender during traffic,
    // each key shared again over Olm while the old session's messages are still in flight.
    let (plan, o) = run(&megolm(5))?;
    let c = &o.counters;
    assert_eq!(plan.conversations(), 4);
    assert_eq!(c.sender_keys, 4 * 3 * 9, "each sender's first key reached each other member: {c:?}");
    assert_eq!(c.sent, c.messages * 9, "a message to a group of 10 is 9 deliveries");
    every_message_delivered(&o, 4 * 24);
    assert_eq!(c.fanout_incomplete, 0);
    let shares = o.total.get(Metric::KeyShare).len();
    assert!(shares >= c.sent_measured / 9 / 5 / 2, "rotations measured: {shares}");
    assert!(!o.total.get(Metric::FanoutLast).is_empty());
    Ok(())
}

#[cfg(feature = "mls")]
#[test]
fn mls_groups_are_created_by_one_commit_and_deliver_every_message_through_self_updates() -> TestResult {
    // Two groups of 20: each created by its first device adding the 19 others in one
    // commit (Welcome through the relay); a self-update commit every 8 messages while
    // application messages are in flight: every message reaches every member.
    let text = "name = \"mls\"\nseed = 6\nduration = \"2s\"\nwarmup = \"500ms\"\ncooldown = \"2s\"\n\
                [clients]\ncount = 40\n\
                [conversations]\nkind = \"groups\"\nfanout = \"relay\"\ngroup_senders = 4\n\
                group_sizes = [{ size = 20, weight = 1 }]\n\
                [crypto]\nprotocol = \"mls\"\nmls_self_update_every = 8\n\
                [traffic]\nrate = 15\narrival = \"poisson\"\nsize = 100\n";
    let (plan, o) = run(text)?;
    let c = &o.counters;
    assert_eq!(plan.conversations(), 2);
    assert_eq!((c.handshakes_ok, c.handshakes_failed), (2 * 19, 0), "every device joined by Welcome: {c:?}");
    assert!(c.messages > 40, "{c:?}");
    assert_eq!(c.sent, c.messages * 19, "a message to a group of 20 is 19 deliveries");
    assert_eq!(c.delivered + c.old_epoch, c.sent, "every copy delivered or counted under its name: {c:?}");
    // A sender that falls more than 4 commits behind (a busy shard thread in a debug
    // build) sends from an epoch its recipients no longer hold: counted, never silent.
    assert!(c.old_epoch * 20 <= c.sent, "old-epoch messages are the exception: {c:?}");
    assert_eq!((c.lost(), c.duplicated, c.auth_failed, c.malformed, c.not_ready, c.too_old), (0, 0, 0, 0, 0, 0));
    let commits = o.total.get(Metric::MlsCommit).len();
    assert!(commits >= c.sent_measured / 19 / 9, "self-updates during traffic: {commits}");
    // Each self-update (the two creations are not fanned out) is processed by 19 members;
    // the window's edges split a commit's processings (each is measured at its own time).
    let processed = o.total.get(Metric::MlsCommitProcess).len();
    let updates = commits - 2;
    assert!(processed.abs_diff(updates * 19) <= 2 * 19, "each processed by 19: {processed} for {updates}");
    assert_eq!(o.total.get(Metric::MlsWelcome).len(), 38);
    Ok(())
}

/// The error a scenario is refused with (parsing or planning), or "" when it is accepted.
fn refusal(text: &str) -> String {
    match Scenario::parse(text, "t.toml", &[])
        .map_err(|e| format!("{e:#}"))
        .and_then(|s| Plan::new(s).map(drop).map_err(|e| format!("{e:#}")))
    {
        Ok(()) => String::new(),
        Err(e) => e,
    }
}

#[test]
fn protocols_the_driver_cannot_run_with_this_population_are_refused_with_the_reason() {
    let relay_groups =
        "[conversations]\nkind = \"groups\"\nfanout = \"relay\"\ngroup_sizes = [{ size = 10, weight = 1 }]\n";
    let e = refusal(&olm("alternating", relay_groups));
    assert!(e.contains("crypto.protocol") && e.contains("pairwise"), "{e}");
    let e = refusal(&olm("alternating", "").replace("\"olm\"", "\"megolm\""));
    assert!(e.contains("megolm") && e.contains("fanout = \"relay\""), "{e}");
    let e = refusal(&olm("alternating", "").replace("\"olm\"", "\"mls\""));
    assert!(e.contains("mls") && e.contains("fanout = \"relay\""), "{e}");
    let e = refusal(&olm("alternating", "").replace("\"olm\"", "\"signal\""));
    assert!(e.contains("unknown protocol"), "{e}");
    assert_eq!(refusal(&olm("alternating", "")), "", "olm pairs are accepted");
}

#[cfg(feature = "mls")]
#[test]
fn mls_group_of_20_with_removes_adds_and_self_updates_during_traffic_delivers_to_every_current_member() -> TestResult {
    // One group of 20 (4 senders): every 3 messages the creator removes a member that does
    // not send (a commit) or re-adds the one it removed (a commit and a Welcome from a key
    // package that member published afresh and the creator claimed); a self-update every 10.
    // The relay fans out to all 20 devices; a copy counts as sent only to a member at the
    // sender's epoch, so a removed device's copies are `not_member`, never delivered.
    let text = "name = \"mls-churn\"\nseed = 8\nduration = \"4s\"\nwarmup = \"500ms\"\ncooldown = \"2s\"\n\
                [clients]\ncount = 20\n\
                [conversations]\nkind = \"groups\"\nfanout = \"relay\"\ngroup_senders = 4\n\
                group_sizes = [{ size = 20, weight = 1 }]\n\
                [crypto]\nprotocol = \"mls\"\nmls_self_update_every = 10\nmls_churn_every = 3\n\
                [traffic]\nrate = 15\narrival = \"poisson\"\nsize = 100\n";
    let (plan, o) = run(text)?;
    let c = &o.counters;
    assert_eq!(plan.conversations(), 1);
    assert_eq!((c.handshakes_ok, c.handshakes_failed), (19, 0), "every device joined by Welcome: {c:?}");
    assert!(c.messages > 25, "{c:?}");
    assert!(c.members_removed >= 2 && c.members_readded >= 2, "members removed and re-added during traffic: {c:?}");
    assert!(c.members_readded + 1 >= c.members_removed, "every removed member but the last came back: {c:?}");
    // While a member is out, a message has 18 recipients, otherwise 19.
    assert!(c.sent < c.messages * 19 && c.sent >= c.messages * 18, "copies only to current members: {c:?}");
    assert!(c.not_member > 0, "the relay's copies to a removed device are counted under their name: {c:?}");
    assert_eq!(c.delivered + c.old_epoch, c.sent, "every copy to a current member delivered or counted: {c:?}");
    // A removed device that has processed its removal cannot read what was in flight to it
    // from before (and a busy debug build may leave a sender > 4 epochs behind): counted.
    assert!(c.old_epoch * 10 <= c.sent, "old-epoch messages are the exception: {c:?}");
    assert_eq!((c.duplicated, c.auth_failed, c.malformed, c.not_ready, c.too_old, c.other_errors), (0, 0, 0, 0, 0, 0));
    assert_eq!(c.refused_total(), 0, "{c:?}");
    let commits = o.total.get(Metric::MlsCommit).len();
    assert!(commits >= 4, "self-updates and membership commits measured: {commits}");
    Ok(())
}

#[test]
fn membership_churn_is_refused_for_another_protocol_or_without_a_member_that_does_not_send() {
    let groups = |senders: u32| {
        format!(
            "name = \"m\"\nduration = \"1s\"\n[clients]\ncount = 20\n\
             [conversations]\nkind = \"groups\"\nfanout = \"relay\"\ngroup_senders = {senders}\n\
             group_sizes = [{{ size = 10, weight = 1 }}]\n\
             [crypto]\nprotocol = \"mls\"\nmls_churn_every = 5\n"
        )
    };
    if sealproto::Protocol::Mls.available() {
        assert_eq!(refusal(&groups(3)), "", "mls groups with members that do not send are accepted");
        let e = refusal(&groups(0));
        assert!(e.contains("crypto.mls_churn_every") && e.contains("group_senders"), "{e}");
    }
    let e = refusal(&groups(3).replace("\"mls\"", "\"megolm\""));
    assert!(e.contains("crypto.mls_churn_every") && e.contains("protocol = \"mls\""), "{e}");
    let leaves = |s: u32| groups(s).replace("\"mls\"\nmls_churn_every", "\"megolm\"\nmegolm_leave_every");
    assert_eq!(refusal(&leaves(3)), "", "megolm groups with members that do not send are accepted");
    let e = refusal(&leaves(0));
    assert!(e.contains("crypto.megolm_leave_every") && e.contains("group_senders"), "{e}");
    let e = refusal(&leaves(3).replace("\"megolm\"", "\"mls\""));
    assert!(e.contains("crypto.megolm_leave_every") && e.contains("protocol = \"megolm\""), "{e}");
}

#[test]
fn megolm_group_of_50_rotates_when_members_leave_and_the_departed_cannot_read_what_follows() -> TestResult {
    // One group of 50 (3 senders), no rotation by count: every 10 messages a member that
    // does not send leaves; each sender rotates at once and shares the new key over Olm
    // with the members that remain. The relay still fans out to the departed devices: each
    // tries the key it kept on what follows, and must fail (counted `not_member`).
    let text = "name = \"megolm-leave\"\nseed = 9\nduration = \"3s\"\nwarmup = \"500ms\"\ncooldown = \"2s\"\n\
                [clients]\ncount = 50\n\
                [conversations]\nkind = \"groups\"\nfanout = \"relay\"\ngroup_senders = 3\n\
                group_sizes = [{ size = 50, weight = 1 }]\n\
                [crypto]\nprotocol = \"megolm\"\nmegolm_rotate_after = 0\nmegolm_leave_every = 10\n\
                [traffic]\nrate = 40\narrival = \"poisson\"\nsize = 100\n";
    let (plan, o) = run(text)?;
    let c = &o.counters;
    assert_eq!(plan.conversations(), 1);
    assert_eq!((c.handshakes_ok, c.handshakes_failed), (3 * 49 - 3, 0), "Olm sessions set up: {c:?}");
    assert_eq!(c.sender_keys, 3 * 49, "each sender's first key reached each other member: {c:?}");
    assert!(c.members_removed >= 3, "members left during traffic: {c:?}");
    // Each leave takes one recipient off every later message.
    assert!(c.sent < c.messages * 49 && c.sent > c.messages * (49 - c.members_removed), "{c:?}");
    assert!(c.not_member > 0, "the departed devices got later messages and could not read them: {c:?}");
    assert_eq!(c.departed_read, 0, "no departed device read a message sent after it left: {c:?}");
    every_message_delivered(&o, 3 * 49 - 3);
    // Every leave rotated every sender: at least 3 key shares per leave (measured ones).
    assert!(o.total.get(Metric::KeyShare).len() >= 3 * (c.members_removed - 1), "rotations on leave measured");
    Ok(())
}

#[test]
fn olm_through_a_reordering_and_replaying_relay_opens_every_message_and_refuses_each_replay_by_name() -> TestResult {
    // The embedded relay plays the adversary on the Olm messages it forwards (its reorder:
    // held until the next one to the same device, within vodozemac's window of skipped
    // message keys; its replay: the same ciphertext delivered again 50 ms later). Ping-pong,
    // so the reorders also cross DH-ratchet turns.
    let (_, o) = run(&olm("alternating", "[relay]\nadversary = \"reorder=0.05,replay=0.02,seed=7\"\n"))?;
    let c = &o.counters;
    let a = o.relay_stats.as_ref().and_then(|r| r.adversary).ok_or("the adversary's own counts")?;
    assert!(a.reordered >= 10 && a.replayed >= 5, "the adversary acted on Olm messages: {a:?}");
    assert_eq!((a.tampered, a.dropped, a.duplicated), (0, 0, 0), "{a:?}");
    assert_eq!(c.reordered, a.reordered, "every reorder seen, and each message still opened: {c:?}");
    assert_eq!(c.duplicated, a.replayed, "every replay refused and counted as a duplicate: {c:?}");
    assert_eq!(c.delivered, c.sent, "nothing lost to the reorders: {c:?}");
    assert_eq!((c.lost(), c.auth_failed, c.malformed, c.not_ready, c.too_old), (0, 0, 0, 0, 0), "{c:?}");
    assert_eq!((c.handshakes_ok, c.handshakes_failed), (20, 0));
    Ok(())
}
