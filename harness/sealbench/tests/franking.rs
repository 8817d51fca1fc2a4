//! Message franking through the real relay (`docs/PROTOCOL.md` §6.1), over real sockets: a
//! franked SEND comes out as a DELIVER whose trailer the relay stamped, its REPORT
//! verifies, and every altered part of a report — message, franking key, commitment,
//! stamp, context — is refused by name and counted; a franked SEND too short for its
//! trailer is refused; an unfranked SEND passes untouched. (The driver's side: the unit
//! tests of `driver::protocol`, and `run.rs` for reports at a share.)

use futures_util::{SinkExt, StreamExt};
use sealbench::relay::{Relay, RelayConfig};
use sealcore::frame::{self, ErrorCode, FLAG_ACK, FLAG_FRANKED, FLAG_GROUP, Frame};
use sealcore::franking;
use std::time::Duration;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

type TestResult = Result<(), Box<dyn std::error::Error + Send + Sync>>;
type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

async fn send(ws: &mut Ws, f: Frame<'_>) -> TestResult {
    let mut buf = vec![0u8; f.encoded_len()];
    f.encode(&mut buf)?;
    ws.send(Message::Binary(buf.into())).await?;
    Ok(())
}

async fn recv(ws: &mut Ws) -> Result<Vec<u8>, Box<dyn std::error::Error + Send + Sync>> {
    loop {
        let m = tokio::time::timeout(Duration::from_secs(3), ws.next()).await?.ok_or("connection ended")??;
        if let Message::Binary(b) = m {
            return Ok(b.to_vec());
        }
    }
}

async fn hello(addr: std::net::SocketAddr, id: u64) -> Result<Ws, Box<dyn std::error::Error + Send + Sync>> {
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}")).await?;
    send(&mut ws, Frame::Hello { client_id: id, token: &[] }).await?;
    assert!(matches!(frame::decode(&recv(&mut ws).await?)?, Frame::Welcome { .. }));
    Ok(ws)
}

/// What a recipient keeps of a franked DELIVER to report it.
struct Kept {
    sender: u64,
    body: Vec<u8>,
    c: [u8; 32],
    time_ns: u64,
    stamp: [u8; 32],
}

fn kept(deliver: &[u8]) -> Result<Kept, Box<dyn std::error::Error + Send + Sync>> {
    let Frame::Deliver { sender, flags, body, .. } = frame::decode(deliver)? else {
        return Err("not a DELIVER".into());
    };
    assert_ne!(flags & FLAG_FRANKED, 0, "a franked DELIVER keeps the FRANKED flag");
    let t = franking::split_trailer(body).ok_or("no trailer")?;
    Ok(Kept { sender, body: t.body.to_vec(), c: *t.commitment, time_ns: t.time_ns, stamp: *t.stamp })
}

/// What a REPORT says (a struct, so that a test can alter one field of it).
#[derive(Clone, Copy)]
struct Report<'a> {
    sender: u64,
    recipient: u64,
    time_ns: u64,
    commitment: &'a [u8; 32],
    stamp: &'a [u8; 32],
    franking_key: &'a [u8; 32],
    message: &'a [u8],
}

/// Sends a REPORT and returns the REPORT_RESULT's result.
async fn report(ws: &mut Ws, r: Report<'_>) -> Result<u8, Box<dyn std::error::Error + Send + Sync>> {
    let f = Frame::Report {
        request_id: 9,
        sender: r.sender,
        recipient: r.recipient,
        time_ns: r.time_ns,
        commitment: r.commitment,
        stamp: r.stamp,
        franking_key: r.franking_key,
        message: r.message,
    };
    send(ws, f).await?;
    match frame::decode(&recv(ws).await?)? {
        Frame::ReportResult { request_id: 9, result } => Ok(result),
        other => Err(format!("expected REPORT_RESULT, got {other:?}").into()),
    }
}

#[tokio::test]
async fn a_franked_message_is_stamped_and_its_report_verifies_and_every_altered_part_is_refused_by_name() -> TestResult
{
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let relay = Relay::new(RelayConfig::default());
    let metrics = relay.metrics();
    let (stop, rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(relay.serve(listener, async move {
        let _ = rx.await;
    }));
    let (mut a, mut b) = (hello(addr, 1).await?, hello(addr, 2).await?);

    // The sender: a message, its franking key, the commitment in the trailer.
    let (fk, message) = ([0x42u8; 32], b"meet me at the usual place".to_vec());
    let c = franking::commit(&fk, &message);
    let mut body = vec![2u8, 1, 0, 0, 0, 0xAA, 0xBB]; // an opaque E2E body
    franking::put_trailer(&mut body, &c);
    send(&mut a, Frame::Send { request_id: 5, flags: FLAG_ACK | FLAG_FRANKED, recipient: 2, body: &body }).await?;
    assert_eq!(frame::decode(&recv(&mut a).await?)?, Frame::Ack { request_id: 5 });
    let k = kept(&recv(&mut b).await?)?;
    assert_eq!((k.sender, &k.body[..], k.c), (1, &[2u8, 1, 0, 0, 0, 0xAA, 0xBB][..], c));
    assert_ne!(k.stamp, [0u8; 32], "the relay stamped it");
    assert!(k.time_ns > 0);

    let good = Report {
        sender: 1,
        recipient: 2,
        time_ns: k.time_ns,
        commitment: &k.c,
        stamp: &k.stamp,
        franking_key: &fk,
        message: &message,
    };
    assert_eq!(report(&mut b, good).await?, frame::REPORT_VERIFIED);
    // Altered after the fact: the message, the key, the commitment, the stamp, the context.
    let mut other_message = message.clone();
    other_message[0] ^= 1;
    let altered_message = Report { message: &other_message, ..good };
    assert_eq!(report(&mut b, altered_message).await?, frame::REPORT_REFUSED_COMMITMENT);
    let other_key = [0x43u8; 32];
    assert_eq!(report(&mut b, Report { franking_key: &other_key, ..good }).await?, frame::REPORT_REFUSED_COMMITMENT);
    // Another message with its own valid commitment, passed off under this stamp.
    let c2 = franking::commit(&fk, b"something else entirely");
    let forged = Report { commitment: &c2, message: b"something else entirely", ..good };
    assert_eq!(report(&mut b, forged).await?, frame::REPORT_REFUSED_STAMP);
    let mut s2 = k.stamp;
    s2[7] ^= 0x10;
    assert_eq!(report(&mut b, Report { stamp: &s2, ..good }).await?, frame::REPORT_REFUSED_STAMP);
    assert_eq!(report(&mut b, Report { sender: 3, ..good }).await?, frame::REPORT_REFUSED_STAMP);
    assert_eq!(report(&mut b, Report { time_ns: k.time_ns + 1, ..good }).await?, frame::REPORT_REFUSED_STAMP);

    // A franked SEND too short for its trailer: refused, not forwarded.
    send(&mut a, Frame::Send { request_id: 6, flags: FLAG_FRANKED, recipient: 2, body: &[2u8; 71] }).await?;
    match frame::decode(&recv(&mut a).await?)? {
        Frame::Error { request_id: 6, code, .. } => assert_eq!(code, ErrorCode::Malformed as u16),
        other => panic!("expected MALFORMED, got {other:?}"),
    }
    // An unfranked SEND passes untouched (no trailer written, no flag).
    let plain = [2u8; 80];
    send(&mut a, Frame::Send { request_id: 7, flags: 0, recipient: 2, body: &plain }).await?;
    match frame::decode(&recv(&mut b).await?)? {
        Frame::Deliver { flags: 0, body, .. } => assert_eq!(body, &plain[..]),
        other => panic!("expected an untouched DELIVER, got {other:?}"),
    }

    // A franked group message: one stamp, the group id as its recipient.
    for (ws, id) in [(&mut a, 1u64), (&mut b, 2)] {
        send(ws, Frame::GroupJoin { request_id: 20 + id, group: 77 }).await?;
        assert_eq!(frame::decode(&recv(ws).await?)?, Frame::Ack { request_id: 20 + id });
    }
    send(&mut a, Frame::GroupSend { request_id: 30, flags: FLAG_FRANKED, group: 77, body: &body }).await?;
    let d = recv(&mut b).await?;
    let Frame::Deliver { flags, group: 77, .. } = frame::decode(&d)? else { panic!("a group DELIVER") };
    assert_eq!(flags, FLAG_GROUP | FLAG_FRANKED);
    let g = kept(&d)?;
    let group_report = Report { recipient: 77, time_ns: g.time_ns, commitment: &g.c, stamp: &g.stamp, ..good };
    assert_eq!(report(&mut b, group_report).await?, frame::REPORT_VERIFIED);

    let f = metrics.franking.stats().ok_or("franking stats")?;
    assert_eq!(f.stamped, 2);
    assert_eq!((f.reports_verified, f.reports_refused_commitment, f.reports_refused_stamp), (2, 2, 4));
    assert!(f.report_verify_us.is_some_and(|t| t.count == 8));
    assert_eq!(metrics.refused_count(ErrorCode::Malformed), 1);
    let text = metrics.encode();
    for line in [
        "sealbench_relay_reports_total{result=\"verified\"} 2",
        "sealbench_relay_reports_total{result=\"commitment\"} 2",
        "sealbench_relay_reports_total{result=\"stamp\"} 4",
        "sealbench_relay_franked_stamped_total 2",
    ] {
        assert!(text.contains(line), "{line} in {text}");
    }
    let _ = stop.send(());
    server.await?;
    Ok(())
}

/// 1:1 chats and client-fan-out groups, franked, with 1 % of the messages reported.
const FRANKED_MIX: &str = "name = \"franked\"\nseed = 9\nduration = \"3s\"\nwarmup = \"500ms\"\ncooldown = \"2s\"\n\
    [clients]\ncount = 40\n\
    [conversations]\nkind = \"mix\"\ngroup_share = 0.5\nfanout = \"client\"\ngroup_senders = 2\n\
    group_sizes = [{ size = 5, weight = 1 }]\n\
    [crypto]\nfranking = true\n\
    [traffic]\naggregate_rate = 2000\nsize = 128\nreport_share = 0.01\n";

#[test]
fn with_reports_at_one_percent_every_report_sent_is_verified_and_nothing_is_lost() -> TestResult {
    use sealbench::driver::recorder::Metric;
    use sealbench::driver::{self, RunOptions};
    use sealbench::scenario::{Plan, Scenario};
    let plan = Plan::new(Scenario::parse(FRANKED_MIX, "franked.toml", &[])?)?;
    let outcome = driver::run(&plan, &RunOptions::default(), |_, _| {})?;
    let c = &outcome.counters;
    assert!(c.sent > 5_000, "{c:?}");
    assert_eq!((c.delivered, c.lost(), c.franking_mismatch, c.auth_failed, c.malformed), (c.sent, 0, 0, 0, 0));
    assert!(c.reports_sent > 20, "about 1 % of {} reported: {}", c.delivered, c.reports_sent);
    assert!(c.reports_sent < c.delivered / 50, "about 1 %: {}", c.reports_sent);
    assert_eq!(c.reports_verified, c.reports_sent, "every report verified: {c:?}");
    assert_eq!((c.reports_refused_commitment, c.reports_refused_stamp), (0, 0));
    assert_eq!(c.franking_bytes, 104 * c.sent, "104 bytes added per franked copy");
    assert!(!outcome.total.get(Metric::Frank).is_empty(), "the sender's franking is timed");
    let relay = outcome.relay_stats.as_ref().and_then(|r| r.franking.clone()).ok_or("relay franking stats")?;
    assert_eq!(relay.stamped, c.sent, "the relay stamped every copy");
    assert_eq!(
        (relay.reports_verified, relay.reports_refused_commitment + relay.reports_refused_stamp),
        (c.reports_sent, 0)
    );
    Ok(())
}

#[test]
fn franked_relay_fanout_groups_are_stamped_once_per_message_and_their_reports_verify() -> TestResult {
    use sealbench::driver::{self, RunOptions};
    use sealbench::scenario::{Plan, Scenario};
    let set = ["conversations.fanout=\"relay\"".to_owned(), "traffic.report_share=0.05".to_owned()];
    let plan = Plan::new(Scenario::parse(FRANKED_MIX, "franked.toml", &set)?)?;
    let outcome = driver::run(&plan, &RunOptions::default(), |_, _| {})?;
    let c = &outcome.counters;
    assert_eq!((c.delivered, c.lost(), c.franking_mismatch, c.auth_failed, c.malformed), (c.sent, 0, 0, 0, 0));
    assert!(c.reports_sent > 50, "{c:?}");
    assert_eq!((c.reports_verified, c.reports_refused_commitment, c.reports_refused_stamp), (c.reports_sent, 0, 0));
    let relay = outcome.relay_stats.as_ref().and_then(|r| r.franking.clone()).ok_or("relay franking stats")?;
    assert!(relay.stamped < c.sent, "a group message is stamped once for all its members");
    assert_eq!(relay.reports_verified, c.reports_sent);
    Ok(())
}

#[test]
fn franking_is_refused_where_it_cannot_run_naming_the_field() {
    use sealbench::scenario::{Plan, Scenario};
    let cases = [
        ("crypto.protocol=\"plaintext\"", "crypto.franking"),
        ("traffic.report_share=1.5", "traffic.report_share"),
        ("traffic.report_share=-0.5", "traffic.report_share"),
        ("relay.wire=\"mqtt\"", "relay.wire"),
    ];
    for (set, expected) in cases {
        let refused = Scenario::parse(FRANKED_MIX, "franked.toml", &[set.to_owned()])
            .map_err(|e| format!("{e:#}"))
            .and_then(|s| Plan::new(s).map(drop).map_err(|e| format!("{e:#}")));
        let err = refused.expect_err(set);
        assert!(err.contains(expected), "{set}: {err}");
    }
}

#[test]
fn the_tradeoff_matrix_runs_the_three_stances_on_one_workload_and_tables_them() -> TestResult {
    let dir = tempfile::tempdir()?;
    let out = dir.path().join("m");
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_sealbench"))
        .args([
            "matrix",
            concat!(env!("CARGO_MANIFEST_DIR"), "/../../scenarios/moderation-tradeoff.toml"),
            "--protocol",
            "plaintext,noise",
            "--franking",
            "off,on",
            "--no-baseline",
            "--repeat",
            "1",
        ])
        .args(["--set", "clients.count=60", "--set", "traffic.aggregate_rate=600", "--set", "duration=\"2s\""])
        .args(["--set", "warmup=\"300ms\"", "--set", "clients.connect_rate=0", "--set", "relay.scan.words=1000"])
        .args(["--set", "traffic.report_share=0.05", "--out", out.to_str().ok_or("path")?])
        .output()?;
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let m: sealbench::results::matrix::Matrix =
        serde_json::from_str(&std::fs::read_to_string(out.join("matrix.json"))?)?;
    let stances: Vec<String> = m.cells.iter().filter_map(|c| c.stance.as_ref()).map(|s| s.name.clone()).collect();
    assert_eq!(stances, ["plaintext + scan (1000 words)", "E2EE", "E2EE + franking (5.000% reported)"]);
    for c in &m.cells {
        let s = c.stance.as_ref().ok_or("a stance")?;
        assert_eq!(c.lost, 0, "{}", s.name);
        assert!(s.relay_cpu_us_per_msg.is_some() && s.wire_bytes_per_msg.is_some(), "{}", s.name);
    }
    let [plain, e2ee, franked] = [0, 1, 2].map(|i| m.cells[i].stance.clone().unwrap_or_else(|| unreachable!()));
    assert!(plain.scan_us.is_some() && plain.sees.starts_with("every message"), "{}", plain.sees);
    assert!(e2ee.sees.starts_with("nothing") && e2ee.stamp_us.is_none() && e2ee.reports == (0, 0));
    assert!(franked.stamp_us.is_some() && franked.report_verify_us.is_some() && franked.frank_ns.is_some());
    assert!(franked.reports.0 > 0 && franked.reports.0 == franked.reports.1, "{:?}", franked.reports);
    let bytes = |s: &sealbench::results::stance::Stance| s.wire_bytes_per_msg.map_or(0.0, |b| b.median);
    assert!(bytes(&franked) > bytes(&e2ee) + 100.0, "franking adds 104 B a message (reports on top)");
    let (md, html) =
        (std::fs::read_to_string(out.join("matrix.md"))?, std::fs::read_to_string(out.join("report.html"))?);
    for text in [&md, &html] {
        assert!(text.contains("The relay's stances") && text.contains("what the relay could see"));
    }
    Ok(())
}
