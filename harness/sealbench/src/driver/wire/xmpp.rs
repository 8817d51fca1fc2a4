//! XMPP over WebSocket (RFC 7395: subprotocol `xmpp`, one XML element per text frame): a
//! hand-written codec for the few stanza shapes a simulated device sends and expects, as
//! `docs/TARGETS.md` lists them. Checked against Prosody 0.12.3 (`tests/xmpp.rs`).
//!
//! - Log-in (not timed per message, so written plainly): `<open/>` → `<open/>` and
//!   `<stream:features>`; in-band registration (XEP-0077) of `sb<device id>` with the
//!   password [`PASSWORD`] → result (or `conflict`: the account is there from an earlier
//!   connection); SASL PLAIN → `<success/>`; `<open/>` again → features; resource bind →
//!   result. Then `<presence/>` is sent without waiting ([`Xmpp::after_login`]): the server
//!   flushes the device's offline messages and reflects the presence, in either order
//!   (Prosody reflects first, ejabberd 23.01 flushes first), so the shard's reader takes
//!   both — the stored messages like any delivery, the presence as [`Incoming::Ignored`].
//! - A send: `<message xmlns='jabber:client' to='sb<recipient>@<domain>' id='<16 hex
//!   digits>'><body>BASE64</body></message>`. The id is the send's request id (so a
//!   bounce names its message); the body is the end-to-end body, base64 (the `base64`
//!   crate) encoded in place in the send buffer, behind a header written right in front
//!   of it — no allocation, no formatting per message.
//! - A delivery: a `<message>` whose `from` is `sb<sender>@…` (the server stamps it: no
//!   sender id rides in the body), its `<body>` decoded into the shard's reused scratch
//!   buffer ([`Xmpp::open_body`]); a `<delay xmlns='urn:xmpp:delay'>` child marks a stored
//!   delivery (what `offline_e2e` is measured from).
//! - Refused, by name: `<message type='error'>` (a bounce, e.g. `service-unavailable` for
//!   an unknown recipient) is [`Incoming::Refused`] for the message its id names;
//!   `<stream:error>` and `<close/>` are refused control frames (counted as errors, the
//!   condition logged). Anything else is unexpected (counted as malformed).
//!
//! The scanner reads only the narrow shapes above (attribute values in `'` or `"`, no
//! entities in the values it reads); a full XML parser (`quick-xml`) would cost a parse of
//! every element for the two attributes and one child wanted here.
//!
//! What this adapter lacks (its capability table): no server ack (XEP-0198 stream
//! management is not implemented), no server-side fan-out (MUC is not implemented: use
//! client fan-out), no key directory (PEP is not implemented) and no consume-once keys.
//! The server marks stored deliveries (`<delay/>`) but does not say how many follow, so
//! `mailbox_drain` is not measured.

use super::{
    BODY_AT, Capabilities, Incoming, LoginStep, MAX_DIGITS, RelayProtocol, RequestId, Route, decimal, header_start,
};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use bytes::{Buf, Bytes, BytesMut};
use sealcore::frame::{ErrorCode, FrameError};
use std::sync::OnceLock;

/// XMPP over WebSocket (RFC 7395).
#[derive(Debug, Clone, Copy)]
pub struct Xmpp;

/// Every simulated account's password (in-band registration, then SASL PLAIN). The
/// accounts are load-test accounts on a test server; the password is not a secret.
pub const PASSWORD: &str = "sealbench";
/// The longest XMPP domain the send header has room for.
pub const MAX_DOMAIN: usize = 72;
/// Hex digits of a message's id (its 64-bit request id).
const ID_DIGITS: usize = 16;

const HEAD: &[u8] = b"<message xmlns='jabber:client' to='sb";
const ID: &[u8] = b"' id='";
const BODY: &[u8] = b"'><body>";
const TAIL: &[u8] = b"</body></message>";
const FRAMING: &str = "urn:ietf:params:xml:ns:xmpp-framing";

/// The run's XMPP domain (one per process: see [`use_domain`]).
static DOMAIN: OnceLock<Box<str>> = OnceLock::new();

/// Sets the XMPP domain the accounts live on (`sb<id>@<domain>`) for this process.
///
/// # Errors
/// Longer than [`MAX_DOMAIN`], not a plain host name, or a different domain than one set
/// before in this process.
pub fn use_domain(domain: &str) -> anyhow::Result<()> {
    if domain.is_empty()
        || domain.len() > MAX_DOMAIN
        || !domain.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-')
    {
        anyhow::bail!("XMPP domain `{domain}`: a host name of 1 to {MAX_DOMAIN} letters, digits, dots and dashes");
    }
    let set = DOMAIN.get_or_init(|| domain.into());
    if &**set != domain {
        anyhow::bail!("XMPP domain `{domain}`: this process already runs against domain `{set}` (one per process)");
    }
    Ok(())
}

/// The XMPP domain a target URL's host means: its name, or `localhost` for a loopback
/// address (a server on 127.0.0.1 serves `localhost`, as Prosody's default host is).
pub fn domain_of(host: &str) -> String {
    match host.trim_matches(['[', ']']).parse::<std::net::IpAddr>() {
        Ok(ip) if ip.is_loopback() => "localhost".to_owned(),
        _ => host.to_owned(),
    }
}

fn domain() -> &'static str {
    DOMAIN.get().map_or("localhost", |d| d)
}

/// Where `needle` first occurs in `hay` at or after `from`.
fn find(hay: &[u8], needle: &[u8], from: usize) -> Option<usize> {
    hay.get(from..)?.windows(needle.len()).position(|w| w == needle).map(|p| p + from)
}

/// The value of attribute `name` (written with its `=`, e.g. `b" from="`) in the start tag
/// that opens `el`: its offset and length.
fn attr(el: &[u8], name: &[u8]) -> Option<(usize, usize)> {
    let tag_end = el.iter().position(|&b| b == b'>')?;
    let at = find(&el[..tag_end], name, 0)? + name.len();
    let quote = *el.get(at)?;
    if quote != b'\'' && quote != b'"' {
        return None;
    }
    let len = el[at + 1..tag_end].iter().position(|&b| b == quote)?;
    Some((at + 1, len))
}

fn attr_is(el: &[u8], name: &[u8], value: &[u8]) -> bool {
    attr(el, name).is_some_and(|(at, len)| &el[at..at + len] == value)
}

/// The device id of a JID `sb<id>@…` (or `sb<id>` alone).
fn device_of(jid: &[u8]) -> Option<u64> {
    let digits = jid.strip_prefix(b"sb")?;
    let end = digits.iter().position(|&b| b == b'@' || b == b'/').unwrap_or(digits.len());
    if end == 0 || end > MAX_DIGITS {
        return None;
    }
    digits[..end].iter().try_fold(0u64, |v, &d| {
        if d.is_ascii_digit() { v.checked_mul(10)?.checked_add(u64::from(d - b'0')) } else { None }
    })
}

fn hex_digit(n: u8) -> u8 {
    if n < 10 { b'0' + n } else { b'a' + n - 10 }
}

fn parse_hex(s: &[u8]) -> Option<u64> {
    if s.is_empty() || s.len() > ID_DIGITS {
        return None;
    }
    s.iter().try_fold(0u64, |v, &d| Some(v << 4 | u64::from((d as char).to_digit(16)?)))
}

/// The name of the first child element of `el`'s `<error>` (the stanza error condition),
/// or of the element itself for a stream error.
fn condition(el: &[u8]) -> &str {
    let from = find(el, b"<error", 0).map_or(0, |e| e + 6);
    let Some(open) = el.get(from..).and_then(|r| r.iter().skip(1).position(|&b| b == b'<')) else { return "?" };
    let name = &el[from + 1 + open + 1..];
    let end = name.iter().position(|&b| b == b' ' || b == b'/' || b == b'>').unwrap_or(name.len());
    std::str::from_utf8(&name[..end]).unwrap_or("?")
}

/// The relay error code a stanza error condition is counted under.
fn code_of(condition: &str) -> u16 {
    match condition {
        "service-unavailable" | "item-not-found" | "recipient-unavailable" | "remote-server-not-found" => {
            ErrorCode::InvalidTarget as u16
        }
        "resource-constraint" | "policy-violation" => ErrorCode::RecipientOverloaded as u16,
        "not-authorized" | "forbidden" => ErrorCode::AuthFailed as u16,
        _ => ErrorCode::Malformed as u16,
    }
}

/// A received `<message>`.
fn message(el: &[u8]) -> Incoming<'static> {
    if attr_is(el, b" type=", b"error") {
        let request = attr(el, b" id=").and_then(|(at, len)| parse_hex(&el[at..at + len]));
        let request = request.map_or(RequestId::Unknown, RequestId::decode);
        return Incoming::Refused { request, code: code_of(condition(el)) };
    }
    let Some(sender) = attr(el, b" from=").and_then(|(at, len)| device_of(&el[at..at + len])) else {
        return Incoming::Malformed;
    };
    let Some(body_at) = find(el, b"<body>", 0).map(|b| b + 6) else { return Incoming::Malformed };
    let stored = find(el, b"urn:xmpp:delay", 0).is_some();
    Incoming::Deliver { body_at, sender, stored, receipt: None }
}

/// A stream-level refusal: counted as an error, its condition logged.
fn stream_end(el: &[u8]) -> Incoming<'static> {
    let why = if el.starts_with(b"<close") { "close" } else { condition(el) };
    tracing::warn!(condition = why, "XMPP server ended the stream");
    Incoming::Refused { request: RequestId::Unknown, code: code_of(why) }
}

impl Xmpp {
    /// Decodes a delivery's base64 body (from `body_at` of `frame` to `</body>`) into
    /// `buf` (cleared first; reused, so nothing is allocated once it is large enough):
    /// the end-to-end body is then all of `buf`.
    ///
    /// # Errors
    /// No `</body>`, or not base64 (named).
    pub fn open_body(frame: &[u8], body_at: usize, buf: &mut Vec<u8>) -> Result<(), &'static str> {
        let text = frame.get(body_at..).ok_or("no <body>")?;
        let end = text.iter().position(|&b| b == b'<').ok_or("no </body>")?;
        let text = &text[..end];
        buf.clear();
        buf.resize(text.len().div_ceil(4) * 3, 0);
        let n = STANDARD.decode_slice(text, buf).map_err(|_| "a <body> that is not base64")?;
        buf.truncate(n);
        Ok(())
    }

    /// The frame sent once the log-in's steps are answered, without waiting for an answer:
    /// the initial `<presence/>` (what makes the server deliver what it stored).
    pub fn after_login() -> &'static [u8] {
        b"<presence xmlns='jabber:client'/>"
    }

    /// Answer frames that come before a log-in step's answer: the server's `<open/>`
    /// before its `<stream:features>`.
    pub fn login_preamble(frame: &[u8]) -> bool {
        frame.starts_with(b"<open ")
    }
}

/// `<open/>` to `domain`.
fn open(domain: &str) -> Vec<u8> {
    format!("<open xmlns='{FRAMING}' to='{domain}' version='1.0'/>").into_bytes()
}

const STEP_OPEN: &str = "<open/> (stream features)";
const STEP_REGISTER: &str = "in-band registration (XEP-0077)";
const STEP_AUTH: &str = "SASL PLAIN";
const STEP_REOPEN: &str = "<open/> after SASL (stream features)";
const STEP_BIND: &str = "resource bind";

impl RelayProtocol for Xmpp {
    const CAPABILITIES: Capabilities = crate::target::XMPP;
    const SUBPROTOCOL: Option<&'static str> = Some("xmpp");
    const TEXT: bool = true;
    /// `<message xmlns='jabber:client' to='sb`, 20 digits, `@`, the domain, `' id='`, 16
    /// hex digits, `'><body>`.
    const MAX_HEADER_LEN: usize = HEAD.len() + MAX_DIGITS + 1 + MAX_DOMAIN + ID.len() + ID_DIGITS + BODY.len();

    #[inline]
    fn finish_send(out: &mut BytesMut, route: &Route) -> Result<(), FrameError> {
        let domain = domain().as_bytes();
        let mut digits = [0u8; MAX_DIGITS];
        let d = decimal(route.to, &mut digits);
        let header_len = HEAD.len() + MAX_DIGITS - d + 1 + domain.len() + ID.len() + ID_DIGITS + BODY.len();
        let at = header_start(out, header_len)?;
        let body_len = out.len() - BODY_AT;
        let encoded = body_len.div_ceil(3) * 4;
        // Base64 into the room after the body, then moved over it: the buffer is the
        // shard's reused send buffer, so this costs a copy, not an allocation.
        out.resize(BODY_AT + body_len + encoded, 0);
        let (body, room) = out.split_at_mut(BODY_AT + body_len);
        let n = STANDARD.encode_slice(&body[BODY_AT..], room).map_err(|_| FrameError::BufferTooSmall)?;
        out.copy_within(BODY_AT + body_len..BODY_AT + body_len + n, BODY_AT);
        out.truncate(BODY_AT + n);
        out.extend_from_slice(TAIL);
        let id = route.request.encode();
        let h = &mut out[at..BODY_AT];
        let mut i = 0;
        for part in [HEAD, &digits[d..], b"@", domain, ID] {
            h[i..i + part.len()].copy_from_slice(part);
            i += part.len();
        }
        for k in 0..ID_DIGITS {
            h[i + k] = hex_digit((id >> (4 * (ID_DIGITS - 1 - k))) as u8 & 0xf);
        }
        h[i + ID_DIGITS..].copy_from_slice(BODY);
        out.advance(at);
        Ok(())
    }

    fn finish_group_send(_out: &mut BytesMut, _request: RequestId, _group: u64, _from: u64) -> Result<(), FrameError> {
        // No server-side fan-out (MUC is not implemented): the plan refuses relay fan-out.
        Err(FrameError::BadField)
    }

    #[inline]
    fn decode(frame: &[u8]) -> Incoming<'_> {
        if frame.starts_with(b"<message") {
            message(frame)
        } else if frame.starts_with(b"<presence") {
            Incoming::Ignored
        } else if frame.starts_with(b"<stream:error") || frame.starts_with(b"<close") {
            stream_end(frame)
        } else {
            Incoming::Unexpected
        }
    }

    fn login(
        id: u64,
        token: Option<&[u8]>,
        key: Option<&[u8; 32]>,
        group: Option<u64>,
    ) -> anyhow::Result<Vec<LoginStep>> {
        if token.is_some() {
            anyhow::bail!("XMPP log-in: the server takes no sealbench auth token (relay.auth_secret)");
        }
        if key.is_some() {
            anyhow::bail!("XMPP log-in: this adapter has no key directory to publish a key in");
        }
        if group.is_some() {
            anyhow::bail!("XMPP log-in: this adapter has no server-side groups to join (MUC)");
        }
        let domain = domain();
        let user = format!("sb{id}");
        let register = format!(
            "<iq xmlns='jabber:client' type='set' id='reg'><query xmlns='jabber:iq:register'>\
             <username>{user}</username><password>{PASSWORD}</password></query></iq>"
        );
        let plain = STANDARD.encode(format!("\0{user}\0{PASSWORD}"));
        let auth = format!("<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>{plain}</auth>");
        let bind = "<iq xmlns='jabber:client' type='set' id='bind'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>\
                    <resource>sb</resource></bind></iq>";
        Ok(vec![
            (open(domain), STEP_OPEN),
            (register.into_bytes(), STEP_REGISTER),
            (auth.into_bytes(), STEP_AUTH),
            (open(domain), STEP_REOPEN),
            (bind.as_bytes().to_vec(), STEP_BIND),
        ])
    }

    fn logged_in(answer: &[u8], what: &str) -> anyhow::Result<u32> {
        let text = String::from_utf8_lossy(answer);
        let ok = match what {
            STEP_OPEN => {
                if answer.starts_with(b"<stream:features") && !text.contains("<mechanism>PLAIN</mechanism>") {
                    anyhow::bail!("the XMPP server offers no SASL PLAIN (its features: {text})");
                }
                answer.starts_with(b"<stream:features")
            }
            STEP_REOPEN => {
                if answer.starts_with(b"<stream:features") && !text.contains("urn:ietf:params:xml:ns:xmpp-bind") {
                    anyhow::bail!("the XMPP server offers no resource binding after SASL (its features: {text})");
                }
                answer.starts_with(b"<stream:features")
            }
            // An account left by an earlier connection or run: SASL says if its password is ours.
            STEP_REGISTER if answer.starts_with(b"<iq") && attr_is(answer, b" type=", b"error") => {
                if condition(answer) != "conflict" {
                    anyhow::bail!(
                        "{what} refused by the XMPP server ({}): allow it (Prosody: `allow_registration = true`, \
                         `min_seconds_between_registrations = 0`) or create the accounts sb<id> first",
                        condition(answer)
                    );
                }
                true
            }
            STEP_REGISTER | STEP_BIND => answer.starts_with(b"<iq") && attr_is(answer, b" type=", b"result"),
            STEP_AUTH if answer.starts_with(b"<failure") => {
                anyhow::bail!("{what} refused by the XMPP server ({}): password not `{PASSWORD}`?", condition(answer))
            }
            STEP_AUTH => answer.starts_with(b"<success"),
            _ => false,
        };
        if !ok {
            if answer.starts_with(b"<stream:error") {
                anyhow::bail!("XMPP stream error after {what}: {}", condition(answer));
            }
            anyhow::bail!("unexpected answer to {what}: {}", text.chars().take(300).collect::<String>());
        }
        Ok(0)
    }

    #[inline]
    fn receipt(_packet: u16) -> Option<Bytes> {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::driver::wire::{Side, Wire};

    fn sent(to: u64, seq: u64, body: &[u8]) -> BytesMut {
        let mut out = BytesMut::zeroed(BODY_AT);
        out.extend_from_slice(body);
        let request = RequestId::Message { conv: 3, side: Side::Responder, seq };
        Wire::Xmpp.finish_send(&mut out, &Route { request, want_ack: false, from: 1, to, lane: 0 }).unwrap();
        out
    }

    #[test]
    fn a_message_is_laid_out_as_docs_targets_says() {
        let f = sent(42, 7, b"\x00\x01body");
        let id = RequestId::Message { conv: 3, side: Side::Responder, seq: 7 }.encode();
        let want = format!(
            "<message xmlns='jabber:client' to='sb42@{}' id='{id:016x}'><body>AAFib2R5</body></message>",
            domain()
        );
        assert_eq!(std::str::from_utf8(&f).unwrap(), want);
    }

    /// What the server forwards (its own attributes, a `from`, maybe a `<delay/>`) decodes
    /// to the body that was sent, at every length (base64 padding of 0, 1 and 2).
    #[test]
    fn what_is_sent_is_what_a_recipient_opens() {
        for size in [0, 1, 2, 3, 100, 20_000] {
            let body: Vec<u8> = (0..size).map(|i| (i * 7) as u8).collect();
            let f = sent(u64::MAX, 5, &body);
            let text = std::str::from_utf8(&f).unwrap();
            let b64 = &text[text.find("<body>").unwrap()..];
            for (delay, stored) in [("", false), ("<delay xmlns='urn:xmpp:delay' from='localhost' stamp='x'/>", true)] {
                let fwd = format!("<message from='sb99@localhost/sb' to='sb1@localhost/sb' type='chat' xmlns='jabber:client'>{b64}{delay}")
                    .replace("</message>", "")
                    + "</message>";
                match Wire::Xmpp.decode(fwd.as_bytes()) {
                    Incoming::Deliver { body_at, sender, stored: s, receipt: None } => {
                        assert_eq!((sender, s), (99, stored));
                        let mut buf = vec![9; 3];
                        assert_eq!(Wire::Xmpp.open_body(fwd.as_bytes(), body_at, &mut buf), Ok(0));
                        assert_eq!(buf, body);
                    }
                    other => panic!("{other:?}"),
                }
            }
        }
    }

    #[test]
    fn a_bounce_refuses_the_message_its_id_names() {
        let id = RequestId::Message { conv: 9, side: Side::Initiator, seq: 4 };
        let bounce = format!(
            "<message from='sb2@localhost' id='{:016x}' to='sb1@localhost/sb' type='error' xmlns='jabber:client'>\
             <error type='cancel'><service-unavailable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></message>",
            id.encode()
        );
        assert_eq!(
            Wire::Xmpp.decode(bounce.as_bytes()),
            Incoming::Refused { request: id, code: ErrorCode::InvalidTarget as u16 }
        );
        let stream = b"<stream:error xmlns='jabber:client'><policy-violation xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error>";
        assert_eq!(
            Wire::Xmpp.decode(stream),
            Incoming::Refused { request: RequestId::Unknown, code: ErrorCode::RecipientOverloaded as u16 }
        );
    }

    #[test]
    fn login_steps_and_answers() -> anyhow::Result<()> {
        let steps = Wire::Xmpp.login(12, None, None, None)?;
        assert_eq!(steps.len(), 5);
        assert_eq!(Wire::Xmpp.after_login(), Some(&b"<presence xmlns='jabber:client'/>"[..]));
        assert_eq!(Wire::Xmpp.decode(b"<presence from='sb12@localhost/sb'/>"), Incoming::Ignored);
        let auth = std::str::from_utf8(&steps[2].0)?;
        assert!(auth.contains(&STANDARD.encode(format!("\0sb12\0{PASSWORD}"))), "{auth}");
        assert!(Wire::Xmpp.login_preamble(b"<open from='localhost' xmlns='urn:ietf:params:xml:ns:xmpp-framing'/>"));
        let features = b"<stream:features><mechanisms><mechanism>PLAIN</mechanism></mechanisms></stream:features>";
        assert_eq!(Wire::Xmpp.logged_in(features, steps[0].1)?, 0);
        let no_plain = Wire::Xmpp.logged_in(b"<stream:features/>", steps[0].1).unwrap_err();
        assert!(format!("{no_plain}").contains("no SASL PLAIN"), "{no_plain}");
        assert_eq!(Wire::Xmpp.logged_in(b"<iq type='result' id='reg'/>", steps[1].1)?, 0);
        let conflict = b"<iq type='error' id='reg'><error type='cancel'><conflict xmlns='x'/></error></iq>";
        assert_eq!(Wire::Xmpp.logged_in(conflict, steps[1].1)?, 0, "already registered");
        let closed = b"<iq type='error' id='reg'><error type='cancel'><not-allowed xmlns='x'/></error></iq>";
        assert!(format!("{}", Wire::Xmpp.logged_in(closed, steps[1].1).unwrap_err()).contains("not-allowed"));
        let failure = b"<failure xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><not-authorized/></failure>";
        assert!(format!("{}", Wire::Xmpp.logged_in(failure, steps[2].1).unwrap_err()).contains("not-authorized"));
        assert_eq!(Wire::Xmpp.logged_in(b"<success xmlns='x'/>", steps[2].1)?, 0);
        assert!(Wire::Xmpp.logged_in(b"<presence/>", steps[4].1).is_err(), "bind wants its iq result");
        assert!(Wire::Xmpp.login(12, None, Some(&[0; 32]), None).is_err(), "no key directory");
        Ok(())
    }

    #[test]
    fn garbage_is_refused_or_malformed_never_a_panic() {
        for f in [
            &b"<message"[..],
            b"<message from='sb'><body>AA</body></message>",
            b"<message from='sb1x@h'><body>AA</body></message>",
            b"<message from='sb99999999999999999999999@h'><body>AA</body></message>",
            b"<message from='sb1@h'>no body</message>",
            b"<message from='sb1@h><body>",
        ] {
            assert!(matches!(Wire::Xmpp.decode(f), Incoming::Malformed), "{:?}", String::from_utf8_lossy(f));
        }
        assert_eq!(Wire::Xmpp.decode(b"<iq type='get'/>"), Incoming::Unexpected);
        assert_eq!(Wire::Xmpp.decode(b""), Incoming::Unexpected);
        assert!(matches!(
            Wire::Xmpp.decode(b"<message type='error'>"),
            Incoming::Refused { request: RequestId::Unknown, .. }
        ));
        let mut buf = Vec::new();
        for (f, at) in [(&b"<body>!!!!</body>"[..], 6), (b"<body>AAAA", 6), (b"<body>", 60)] {
            assert!(Wire::Xmpp.open_body(f, at, &mut buf).is_err(), "{:?}", String::from_utf8_lossy(f));
        }
    }
}
