//! The relay that reads, on loopback: a keyword scan of the unencrypted messages it
//! carries (`relay.scan`, `sealbench relay --scan`), counted or blocked, and never of the
//! end-to-end-encrypted ones. First through raw clients whose every body the test writes
//! (so it knows exactly which carry a keyword), then through whole runs of the driver.

use futures_util::{SinkExt, StreamExt};
use sealbench::driver::{self, RunOptions};
use sealbench::relay::scan::{ScanAction, ScanStats, Scanner, WordList};
use sealbench::relay::{Relay, RelayConfig};
use sealbench::scenario::{Plan, Scenario};
use sealbench::words;
use sealcore::frame::{self, ErrorCode, FLAG_ACK, Frame};
use sealcore::payload::{E2eKind, PLAINTEXT_HEADER_LEN};
use std::sync::Arc;
use std::time::Duration;
use tokio_tungstenite::tungstenite::Message;

type TestResult = Result<(), Box<dyn std::error::Error + Send + Sync>>;
type Ws = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Keywords on the relay's list of 10,000 generated words.
fn keyword(i: u32) -> Vec<u8> {
    words::word(words::SEED, i).into_bytes()
}

/// A message body of `kind` whose text is `n` filler words (never on a list), with
/// `planted` put between them, each as a word of its own.
fn body(kind: E2eKind, n: u32, planted: &[Vec<u8>]) -> Vec<u8> {
    let mut b = vec![kind as u8, 1, 0, 0, 0];
    b.extend_from_slice(&[b'x'; PLAINTEXT_HEADER_LEN]); // a stamp of letters: not text
    for i in 0..n {
        words::push_word(words::SEED, words::FILLER_FROM + i * 7 + n, &mut b);
        b.push(b' ');
        if let Some(k) = planted.get(i as usize) {
            b.extend_from_slice(k);
            b.push(if i % 2 == 0 { b'.' } else { b' ' });
        }
    }
    b
}

async fn send(ws: &mut Ws, f: Frame<'_>) -> TestResult {
    let mut buf = vec![0u8; f.encoded_len()];
    f.encode(&mut buf)?;
    ws.send(Message::Binary(buf.into())).await?;
    Ok(())
}

async fn recv(ws: &mut Ws) -> Result<Vec<u8>, Box<dyn std::error::Error + Send + Sync>> {
    loop {
        match tokio::time::timeout(Duration::from_secs(2), ws.next()).await?.ok_or("stream ended")?? {
            Message::Binary(b) => return Ok(b.to_vec()),
            Message::Close(c) => return Err(format!("closed: {c:?}").into()),
            _ => continue,
        }
    }
}

async fn hello(addr: std::net::SocketAddr, id: u64) -> Result<Ws, Box<dyn std::error::Error + Send + Sync>> {
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}")).await?;
    send(&mut ws, Frame::Hello { client_id: id, token: &[] }).await?;
    assert!(matches!(frame::decode(&recv(&mut ws).await?)?, Frame::Welcome { .. }));
    Ok(ws)
}

/// What the test sends: each body, whether it goes to the group, and the keywords it
/// carries as words.
fn traffic() -> Vec<(Vec<u8>, bool, usize)> {
    let mut v = Vec::new();
    for i in 0..30u32 {
        let kws: Vec<Vec<u8>> = match i % 5 {
            0 => vec![keyword(i * 331 % 10_000)],
            3 if i > 10 => vec![keyword(9_999), keyword(i)],
            _ => Vec::new(),
        };
        v.push((body(E2eKind::Plain, 12 + i, &kws), false, kws.len()));
    }
    // A keyword inside a longer word is no match.
    let mut inside = body(E2eKind::Plain, 5, &[]);
    inside.extend_from_slice(b"zz");
    inside.extend_from_slice(&keyword(3));
    v.push((inside, false, 0));
    // Relay fan-out: one readable group message with a keyword, one without.
    v.push((body(E2eKind::PlainGroup, 9, &[keyword(42)]), true, 1));
    v.push((body(E2eKind::PlainGroup, 9, &[]), true, 0));
    // End-to-end encrypted bodies carry the same bytes, but the relay cannot read them.
    for kind in [E2eKind::Transport, E2eKind::Group, E2eKind::Olm, E2eKind::Handshake] {
        v.push((body(kind, 8, &[keyword(7)]), kind == E2eKind::Group, 0));
    }
    v
}

/// Sends [`traffic`] through a relay scanning 10,000 generated words with `action`, and
/// checks each message's fate and the relay's counts against what the test planted.
async fn planted_keywords_through_the_relay(action: ScanAction) -> TestResult {
    let scanner = Scanner::new(&WordList::generated(10_000, "test")?, action)?;
    let config = RelayConfig { scan: Some(Arc::new(scanner)), ..RelayConfig::default() };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let relay = Relay::new(config);
    let metrics = relay.metrics();
    let (stop, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(relay.serve(listener, async move {
        let _ = rx.await;
    }));
    let (mut a, mut b) = (hello(addr, 1).await?, hello(addr, 2).await?);
    for ws in [&mut a, &mut b] {
        send(ws, Frame::GroupJoin { request_id: 5, group: 9 }).await?;
        assert_eq!(frame::decode(&recv(ws).await?)?, Frame::Ack { request_id: 5 });
    }
    let traffic = traffic();
    let block = action == ScanAction::Block;
    let (mut expect_delivered, mut planted, mut planted_messages) = (Vec::new(), 0u64, 0u64);
    for (i, (body, group, keywords)) in traffic.iter().enumerate() {
        let request_id = 100 + i as u64;
        let f = if *group {
            Frame::GroupSend { request_id, flags: FLAG_ACK, group: 9, body }
        } else {
            Frame::Send { request_id, flags: FLAG_ACK, recipient: 2, body }
        };
        send(&mut a, f).await?;
        let reply = recv(&mut a).await?;
        planted += *keywords as u64;
        planted_messages += u64::from(*keywords > 0);
        match frame::decode(&reply)? {
            Frame::Error { request_id: r, code, .. } => {
                assert_eq!((r, code), (request_id, ErrorCode::ContentBlocked as u16));
                assert!(block && *keywords > 0, "message {i} refused, with {keywords} keywords planted");
            }
            Frame::Ack { request_id: r } => {
                assert_eq!(r, request_id);
                assert!(!block || *keywords == 0, "message {i} routed with {keywords} keywords planted");
                expect_delivered.push(body.clone());
            }
            other => return Err(format!("unexpected reply {other:?}").into()),
        }
    }
    for want in &expect_delivered {
        match frame::decode(&recv(&mut b).await?)? {
            Frame::Deliver { sender: 1, body, .. } => assert_eq!(body, &want[..], "delivered as sent"),
            other => return Err(format!("unexpected delivery {other:?}").into()),
        }
    }
    assert!(tokio::time::timeout(Duration::from_millis(200), b.next()).await.is_err(), "nothing else delivered");
    drop((a, b)); // the connections end, and publish what they counted
    let _ = stop.send(());
    tokio::time::timeout(Duration::from_secs(10), task).await??;
    let s: ScanStats = metrics.scan_stats().ok_or("the relay scans")?;
    let unreadable = 4;
    assert_eq!(s.scanned, traffic.len() as u64 - unreadable, "every readable body scanned: {s:?}");
    assert_eq!(s.unreadable, unreadable, "E2EE bodies are never scanned: {s:?}");
    assert_eq!(s.matches, planted, "exactly the planted keywords matched: {s:?}");
    assert_eq!(s.matched, planted_messages, "{s:?}");
    assert_eq!(s.blocked, if block { planted_messages } else { 0 }, "{s:?}");
    assert_eq!(metrics.refused_count(ErrorCode::ContentBlocked), s.blocked);
    assert_eq!((s.words, s.action), (10_000, action));
    assert!(s.time_us.as_ref().is_some_and(|t| t.count >= 3 && t.max_us > 0.0), "scan times sampled: {s:?}");
    Ok(())
}

#[tokio::test]
async fn a_blocking_scan_refuses_exactly_the_messages_with_planted_keywords() -> TestResult {
    planted_keywords_through_the_relay(ScanAction::Block).await
}

#[tokio::test]
async fn a_counting_scan_counts_exactly_the_planted_keywords_and_routes_everything() -> TestResult {
    planted_keywords_through_the_relay(ScanAction::Count).await
}

fn scenario(protocol: &str, kind: &str, action: &str) -> String {
    format!(
        "name = \"scan\"\nseed = 11\nduration = \"2s\"\nwarmup = \"500ms\"\ncooldown = \"1s\"\n\
         [clients]\ncount = 20\n\
         [conversations]\nkind = \"{kind}\"\ngroup_share = 0.5\nfanout = \"relay\"\ngroup_senders = 2\n\
         group_sizes = [{{ size = 5, weight = 1 }}]\n\
         [crypto]\nprotocol = \"{protocol}\"\n\
         [traffic]\nrate = 20\nsize = 256\ncontent = \"text\"\nkeyword_share = 0.2\n\
         [relay]\nscan = {{ words = 10000, action = \"{action}\" }}\n"
    )
}

fn run(text: &str) -> Result<driver::Outcome, Box<dyn std::error::Error + Send + Sync>> {
    let plan = Plan::new(Scenario::parse(text, "scan.toml", &[])?)?;
    Ok(driver::run(&plan, &RunOptions::default(), |_, _| {})?)
}

fn scan_of(o: &driver::Outcome) -> Result<ScanStats, Box<dyn std::error::Error + Send + Sync>> {
    Ok(o.relay_stats.as_ref().and_then(|r| r.scan.clone()).ok_or("the embedded relay's scan figures")?)
}

#[test]
fn a_plaintext_run_is_scanned_and_matches_exactly_the_keywords_the_driver_planted() -> TestResult {
    let o = run(&scenario("plaintext", "pairs", "count"))?;
    let (c, s) = (&o.counters, scan_of(&o)?);
    assert!(c.keywords_planted > 20 && c.keywords_planted < c.sent / 2, "about a fifth planted: {c:?}");
    assert_eq!(s.scanned, c.sent, "every message read (1:1: one SEND each, no handshake): {s:?}");
    assert_eq!((s.matches, s.matched), (c.keywords_planted, c.keywords_planted), "{s:?}");
    assert_eq!((s.unreadable, s.blocked), (0, 0), "{s:?}");
    assert_eq!((c.delivered, c.lost()), (c.sent, 0), "counting routes everything: {c:?}");
    assert!(s.time_us.is_some_and(|t| t.count > 0 && t.p50_us > 0.0));
    Ok(())
}

#[test]
fn a_blocking_run_refuses_exactly_the_planted_messages_and_loses_none() -> TestResult {
    let o = run(&scenario("plaintext", "mix", "block"))?;
    let (c, s) = (&o.counters, scan_of(&o)?);
    let refused = c.refused[ErrorCode::ContentBlocked as usize];
    assert!(c.keywords_planted > 10, "{c:?}");
    assert_eq!(s.scanned, c.messages, "one frame per message (pairs and relay fan-out): {s:?} {c:?}");
    assert_eq!((s.matched, s.blocked), (c.keywords_planted, c.keywords_planted), "{s:?}");
    assert!(refused >= s.blocked, "a blocked group message is refused for each member it owed: {refused}");
    assert_eq!(c.refused_total(), refused, "nothing else refused: {c:?}");
    assert_eq!(c.delivered + refused, c.sent, "the rest delivered: {c:?}");
    assert_eq!((c.lost(), c.group_refusals > 0), (0, true), "{c:?}");
    Ok(())
}

#[test]
fn end_to_end_encrypted_messages_are_never_scanned() -> TestResult {
    let o = run(&scenario("noise", "pairs", "block"))?;
    let (c, s) = (&o.counters, scan_of(&o)?);
    assert!(c.keywords_planted > 20, "the same text is sealed: {c:?}");
    assert_eq!((s.scanned, s.matched, s.matches, s.blocked), (0, 0, 0, 0), "{s:?}");
    assert_eq!(s.unreadable, c.sent + 3 * 10, "every SEND unreadable (and the 3 XX handshake messages of 10 pairs)");
    assert_eq!((c.delivered, c.refused_total(), c.lost()), (c.sent, 0, 0), "{c:?}");
    Ok(())
}

/// `sealbench relay` with a scan list it cannot use: exit 2 and a message naming the file
/// or the flag, before it listens.
fn relay_refuses(args: &[&str], says: &[&str]) -> TestResult {
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_sealbench"))
        .args(["relay", "--listen", "127.0.0.1:0"])
        .args(args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()?;
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while child.try_wait()?.is_none() {
        if std::time::Instant::now() > deadline {
            child.kill()?;
            child.wait()?;
            return Err(format!("{args:?}: the relay started instead of refusing its list").into());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let o = child.wait_with_output()?;
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{args:?}: {err}");
    for s in says {
        assert!(err.contains(s), "{args:?}: the error names {s}: {err}");
    }
    assert!(!err.contains("panicked"), "{err}");
    Ok(())
}

#[test]
fn a_bad_scan_list_is_refused_naming_the_file_or_the_field() -> TestResult {
    let dir = tempfile::tempdir()?;
    let missing = dir.path().join("no-such-list.txt");
    let empty = dir.path().join("empty-list.txt");
    std::fs::write(&empty, "# nothing but comments\n\n")?;
    let (missing, empty) = (missing.to_str().ok_or("path")?, empty.to_str().ok_or("path")?);
    relay_refuses(&["--scan", missing], &["--scan", "no-such-list.txt", "cannot read"])?;
    relay_refuses(&["--scan", empty], &["empty-list.txt", "empty"])?;
    relay_refuses(&["--scan-words", "0"], &["--scan-words", "empty"])?;
    relay_refuses(&["--scan-words", "2000000"], &["--scan-words", "1000000"])?;
    relay_refuses(&["--scan-action", "block"], &["--scan-action block needs a list"])?;
    relay_refuses(&["--scan-words", "10", "--scan-action", "delete"], &["delete", "count", "block"])?;
    // The same in a scenario: each error names its field (or the file).
    let with =
        |scan: &str| scenario("plaintext", "pairs", "count").replace("{ words = 10000, action = \"count\" }", scan);
    let bad = |text: String, says: &[&str]| -> TestResult {
        let e = match Scenario::parse(&text, "scan.toml", &[]) {
            Err(e) => e,
            Ok(s) => Plan::new(s).err().ok_or(format!("accepted: {text}"))?,
        };
        let e = format!("{e:#}");
        for s in says {
            assert!(e.contains(s), "the error names {s}: {e}");
        }
        assert!(!e.contains("panicked"), "{e}");
        Ok(())
    };
    bad(with(&format!("{{ file = \"{missing}\" }}")), &["relay.scan.file", "no-such-list.txt"])?;
    bad(with(&format!("{{ file = \"{empty}\" }}")), &["empty-list.txt", "empty"])?;
    bad(with(&format!("{{ words = 10, file = \"{empty}\" }}")), &["relay.scan", "not both"])?;
    bad(with("{ action = \"block\" }"), &["relay.scan", "words"])?;
    bad(with("{ words = 0 }"), &["relay.scan.words", "empty"])?;
    bad(with("{ words = 10, action = \"delete\" }"), &["delete"])?;
    bad(format!("{}url = \"ws://127.0.0.1:9/\"\n", with("{ words = 10 }")), &["relay.scan", "embedded"])?;
    let zeros = scenario("plaintext", "pairs", "count").replace("content = \"text\"\n", "");
    bad(zeros, &["traffic.keyword_share", "text"])?;
    let share = scenario("plaintext", "pairs", "count").replace("keyword_share = 0.2", "keyword_share = 1.5");
    bad(share, &["traffic.keyword_share", "between 0 and 1"])?;
    Ok(())
}
