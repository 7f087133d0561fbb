//! Every example frame printed in the STOMP 1.2 specification
//! (stomp.github.io/stomp-specification-1.2.html), decoded as the specification says, plus the
//! rules of "Value Encoding", "Repeated Header Entries" and the EOL of the Augmented BNF.
//!
//! Examples are copied as printed, with `^@` written as `\0`. Two are not well-formed as printed
//! and are tested for what the decoder does with them, with the reason beside each:
//! - the `DISCONNECT` and first `RECEIPT` examples omit the blank line before `^@`;
//! - the long `ERROR` example announces `content-length:171` for a 170-byte body.
//!
//! Not tested as frames: the schematic `COMMAND/header1:value1` frame and the heart-beat sketch
//! (`heart-beat:<cx>,<cy>`, which has no `^@` and a `CONNECTED:` typo).

mod common;

use bytes::BytesMut;
use common::{decode_error, decode_whole, headers, one_frame, one_frame_v, pairs};
use stompbox_codec::{Command, DecodeError, Frame, Item, Limits, Version, encode, write_header};

/// Checks one spec example: command, every header in order, body; and the same with CRLF line
/// endings in the head (1.2 allows `EOL = [CR] LF`), under every version (none of these
/// examples uses a backslash, so escaping cannot change them).
fn check(input: &[u8], command: Command, want: &[(&str, &str)], body: &[u8]) {
    for version in Version::ALL {
        let f = one_frame_v(version, input);
        assert_eq!(f.command, command, "{version}");
        assert_eq!(headers(&f), pairs(want), "{version}");
        assert_eq!(&f.body[..], body, "{version}");
    }
    let crlf = crlf_head(input);
    let f = one_frame(&crlf);
    assert_eq!(f.command, command);
    assert_eq!(headers(&f), pairs(want));
    assert_eq!(&f.body[..], body);
}

/// `input` with every LF of the head (up to and including the blank line) turned into CRLF.
fn crlf_head(input: &[u8]) -> Vec<u8> {
    let head_end = input
        .windows(2)
        .position(|w| w == b"\n\n")
        .map_or(input.len(), |i| i + 2);
    let mut out = Vec::new();
    for &b in &input[..head_end] {
        if b == b'\n' {
            out.push(b'\r');
        }
        out.push(b);
    }
    out.extend_from_slice(&input[head_end..]);
    out
}

// ---- "Repeated Header Entries" ----

#[test]
fn repeated_header_entries_first_wins() {
    let input = b"MESSAGE\nfoo:World\nfoo:Hello\n\n\0";
    check(
        input,
        Command::Message,
        &[("foo", "World"), ("foo", "Hello")],
        b"",
    );
    let f = one_frame(input);
    assert_eq!(f.header("foo"), Some("World"));
    assert_eq!(
        f.headers.get_all("foo").collect::<Vec<_>>(),
        ["World", "Hello"]
    );
}

#[test]
fn repeated_content_length_first_wins() {
    // The first content-length decides how many octets are read; the second is kept as history.
    let f = one_frame(b"SEND\ncontent-length:3\ncontent-length:5\n\na\0b\0");
    assert_eq!(&f.body[..], b"a\0b");
    assert_eq!(
        f.headers.get_all("content-length").collect::<Vec<_>>(),
        ["3", "5"]
    );
}

// ---- "Connecting" and "Protocol Negotiation" ----

#[test]
fn connect() {
    check(
        b"CONNECT\naccept-version:1.2\nhost:stomp.github.org\n\n\0",
        Command::Connect,
        &[("accept-version", "1.2"), ("host", "stomp.github.org")],
        b"",
    );
}

#[test]
fn stomp_is_connect_by_another_name() {
    // The spec gives no STOMP example; it says servers handle STOMP exactly like CONNECT.
    check(
        b"STOMP\naccept-version:1.2\nhost:stomp.github.org\n\n\0",
        Command::Stomp,
        &[("accept-version", "1.2"), ("host", "stomp.github.org")],
        b"",
    );
}

#[test]
fn connected() {
    check(
        b"CONNECTED\nversion:1.2\n\n\0",
        Command::Connected,
        &[("version", "1.2")],
        b"",
    );
    // The "server" header example from "CONNECTED Frame".
    check(
        b"CONNECTED\nversion:1.2\nserver:Apache/1.3.9\n\n\0",
        Command::Connected,
        &[("version", "1.2"), ("server", "Apache/1.3.9")],
        b"",
    );
}

#[test]
fn negotiation_examples() {
    check(
        b"CONNECT\naccept-version:1.0,1.1,2.0\nhost:stomp.github.org\n\n\0",
        Command::Connect,
        &[
            ("accept-version", "1.0,1.1,2.0"),
            ("host", "stomp.github.org"),
        ],
        b"",
    );
    check(
        b"CONNECTED\nversion:1.1\n\n\0",
        Command::Connected,
        &[("version", "1.1")],
        b"",
    );
    check(
        b"ERROR\nversion:1.2,2.1\ncontent-type:text/plain\n\nSupported protocol versions are 1.2 2.1\0",
        Command::Error,
        &[("version", "1.2,2.1"), ("content-type", "text/plain")],
        b"Supported protocol versions are 1.2 2.1",
    );
}

// ---- "Client Frames" ----

#[test]
fn send_with_content_type() {
    check(
        b"SEND\ndestination:/queue/a\ncontent-type:text/plain\n\nhello queue a\n\0",
        Command::Send,
        &[("destination", "/queue/a"), ("content-type", "text/plain")],
        b"hello queue a\n",
    );
}

#[test]
fn send_with_receipt() {
    check(
        b"SEND\ndestination:/queue/a\nreceipt:message-12345\n\nhello queue a\0",
        Command::Send,
        &[("destination", "/queue/a"), ("receipt", "message-12345")],
        b"hello queue a",
    );
}

#[test]
fn subscribe() {
    check(
        b"SUBSCRIBE\nid:0\ndestination:/queue/foo\nack:client\n\n\0",
        Command::Subscribe,
        &[
            ("id", "0"),
            ("destination", "/queue/foo"),
            ("ack", "client"),
        ],
        b"",
    );
    // The other values the "SUBSCRIBE ack Header" section names.
    for ack in ["auto", "client-individual"] {
        let input = format!("SUBSCRIBE\nid:1\ndestination:/queue/foo\nack:{ack}\n\n\0");
        let f = one_frame(input.as_bytes());
        assert_eq!(f.header("ack"), Some(ack));
    }
}

#[test]
fn unsubscribe() {
    check(
        b"UNSUBSCRIBE\nid:0\n\n\0",
        Command::Unsubscribe,
        &[("id", "0")],
        b"",
    );
}

#[test]
fn ack() {
    check(
        b"ACK\nid:12345\ntransaction:tx1\n\n\0",
        Command::Ack,
        &[("id", "12345"), ("transaction", "tx1")],
        b"",
    );
}

#[test]
fn nack() {
    // No NACK example is printed; the spec says NACK takes the same headers as ACK.
    check(
        b"NACK\nid:12345\ntransaction:tx1\n\n\0",
        Command::Nack,
        &[("id", "12345"), ("transaction", "tx1")],
        b"",
    );
}

#[test]
fn begin_commit_abort() {
    for (input, command) in [
        (&b"BEGIN\ntransaction:tx1\n\n\0"[..], Command::Begin),
        (b"COMMIT\ntransaction:tx1\n\n\0", Command::Commit),
        (b"ABORT\ntransaction:tx1\n\n\0", Command::Abort),
    ] {
        check(input, command, &[("transaction", "tx1")], b"");
    }
}

#[test]
fn disconnect_and_receipt_as_printed_without_blank_line() {
    // The spec prints these two with the NUL right after the last header line, although its
    // BNF requires a blank line. The decoder accepts a NUL where a header line would start as
    // the end of a body-less frame, so the printed frames decode and the stream stays in sync.
    let input = b"DISCONNECT\nreceipt:77\n\0RECEIPT\nreceipt-id:77\n\0\n";
    let out = decode_whole(Version::V1_2, Limits::default(), input);
    assert_eq!(out.error, None);
    assert_eq!(
        out.items,
        [
            Item::Frame(Frame::new(Command::Disconnect).with_header("receipt", "77")),
            Item::Frame(Frame::new(Command::Receipt).with_header("receipt-id", "77")),
            Item::HeartBeat,
        ]
    );
    // And with the blank line the BNF asks for.
    check(
        b"DISCONNECT\nreceipt:77\n\n\0",
        Command::Disconnect,
        &[("receipt", "77")],
        b"",
    );
    // Without a blank line there is no body, so a positive content-length cannot be honoured.
    assert_eq!(
        decode_error(
            Version::V1_2,
            Limits::default(),
            b"DISCONNECT\ncontent-length:2\n\0"
        ),
        DecodeError::MissingNul { content_length: 2 }
    );
}

// ---- "Server Frames" ----

#[test]
fn message() {
    check(
        b"MESSAGE\nsubscription:0\nmessage-id:007\ndestination:/queue/a\ncontent-type:text/plain\n\nhello queue a\0",
        Command::Message,
        &[
            ("subscription", "0"),
            ("message-id", "007"),
            ("destination", "/queue/a"),
            ("content-type", "text/plain"),
        ],
        b"hello queue a",
    );
}

#[test]
fn receipt() {
    check(
        b"RECEIPT\nreceipt-id:message-12345\n\n\0",
        Command::Receipt,
        &[("receipt-id", "message-12345")],
        b"",
    );
}

const ERROR_BODY: &[u8] = b"The message:\n-----\nMESSAGE\ndestined:/queue/a\nreceipt:message-12345\n\nHello queue a!\n-----\nDid not contain a destination header, which is REQUIRED\nfor message propagation.\n";

fn error_example(content_length: usize) -> Vec<u8> {
    let mut v = format!(
        "ERROR\nreceipt-id:message-12345\ncontent-type:text/plain\ncontent-length:{content_length}\nmessage: malformed frame received\n\n"
    )
    .into_bytes();
    v.extend_from_slice(ERROR_BODY);
    v.push(0);
    v
}

#[test]
fn long_error_with_its_true_length() {
    // The body as printed is 170 bytes; with that length the example decodes exactly, and the
    // leading space of " malformed frame received" is kept (1.2: never trim or pad).
    assert_eq!(ERROR_BODY.len(), 170);
    check(
        &error_example(170),
        Command::Error,
        &[
            ("receipt-id", "message-12345"),
            ("content-type", "text/plain"),
            ("content-length", "170"),
            ("message", " malformed frame received"),
        ],
        ERROR_BODY,
    );
}

#[test]
fn long_error_as_printed_reads_171_octets() {
    // As printed it says content-length:171. "This number of octets MUST be read, regardless of
    // whether or not there are NULL octets in the body": the decoder takes the printed NUL as the
    // 171st body octet and then demands the terminating NUL.
    let printed = error_example(171);
    let out = decode_whole(Version::V1_2, Limits::default(), &printed);
    // Nothing yet: the head is consumed, the 170 + 1 octets wait for one more.
    assert_eq!((out.items, out.error, out.leftover), (vec![], None, 171));
    let mut then_nul = printed.clone();
    then_nul.push(0);
    let f = one_frame(&then_nul);
    assert_eq!(f.body.len(), 171);
    assert_eq!(&f.body[..170], ERROR_BODY);
    assert_eq!(f.body[170], 0);
    let mut then_heart_beat = printed;
    then_heart_beat.push(b'\n');
    assert_eq!(
        decode_error(Version::V1_2, Limits::default(), &then_heart_beat),
        DecodeError::MissingNul {
            content_length: 171
        }
    );
}

// ---- "Value Encoding" ----

#[test]
fn escapes_v1_2() {
    let f = one_frame_v(
        Version::V1_2,
        b"MESSAGE\nk\\ce\\\\y\\r\\n:a\\r\\n\\cb\\\\c\n\n\0",
    );
    assert_eq!(headers(&f), pairs(&[("k:e\\y\r\n", "a\r\n:b\\c")]));
}

#[test]
fn escapes_v1_1() {
    let f = one_frame_v(Version::V1_1, b"MESSAGE\nk\\ce\\\\y\\n:a\\n\\cb\\\\c\n\n\0");
    assert_eq!(headers(&f), pairs(&[("k:e\\y\n", "a\n:b\\c")]));
    // \r is a 1.2 addition: undefined in 1.1.
    assert_eq!(
        decode_error(Version::V1_1, Limits::default(), b"MESSAGE\na:x\\ry\n\n\0"),
        DecodeError::InvalidEscape {
            sequence: "\\r".into()
        }
    );
}

#[test]
fn no_escapes_in_v1_0() {
    let f = one_frame_v(Version::V1_0, b"MESSAGE\nk\\c:a\\n\\t\\r\\\\b:c\n\n\0");
    // No unescaping at all; the first colon splits, later ones belong to the value.
    assert_eq!(headers(&f), pairs(&[("k\\c", "a\\n\\t\\r\\\\b:c")]));
}

#[test]
fn connect_and_connected_are_never_escaped() {
    for version in Version::ALL {
        for command in ["CONNECT", "STOMP", "CONNECTED"] {
            let input = format!("{command}\nlogin:a\\cb\npasscode:x:y\\t\\\n\n\0");
            let f = one_frame_v(version, input.as_bytes());
            assert_eq!(
                headers(&f),
                pairs(&[("login", "a\\cb"), ("passcode", "x:y\\t\\")]),
                "{command} {version}"
            );
        }
    }
}

#[test]
fn undefined_escapes_are_errors_in_1_1_and_1_2() {
    for version in [Version::V1_1, Version::V1_2] {
        for (input, sequence) in [
            (&b"SEND\na:x\\ty\n\n\0"[..], "\\t"),
            (b"SEND\na\\x:y\n\n\0", "\\x"),
            (b"SEND\na:trailing\\\n\n\0", "\\"),
            (b"SEND\na:\\ \n\n\0", "\\ "),
        ] {
            assert_eq!(
                decode_error(version, Limits::default(), input),
                DecodeError::InvalidEscape {
                    sequence: sequence.into()
                },
                "{version} {:?}",
                String::from_utf8_lossy(input)
            );
        }
    }
    // The same bytes are plain text in 1.0.
    let f = one_frame_v(Version::V1_0, b"SEND\na:x\\ty\n\n\0");
    assert_eq!(f.header("a"), Some("x\\ty"));
}

#[test]
fn encoding_applies_the_reverse_transformation() {
    let text = "a\r\n:\\b";
    let mut cases = Vec::new();
    for (command, version) in [
        (Command::Send, Version::V1_2),
        (Command::Send, Version::V1_1),
        (Command::Send, Version::V1_0),
        (Command::Connect, Version::V1_2),
        (Command::Connected, Version::V1_1),
    ] {
        let mut out = BytesMut::new();
        write_header("k:", text, command, version, &mut out);
        cases.push(String::from_utf8(out.to_vec()).unwrap());
    }
    assert_eq!(
        cases,
        [
            "k\\c:a\\r\\n\\c\\\\b\n",
            // 1.1 has no escape for CR, and a raw CR that is not part of a CRLF is refused by
            // decoders (ours included): it is sent as a space.
            "k\\c:a \\n\\c\\\\b\n",
            // 1.0 and CONNECT/CONNECTED cannot carry CR/LF (sent as spaces) nor a colon in a
            // name (sent as '_'); colons and backslashes in values are literal.
            "k_:a  :\\b\n",
            "k_:a  :\\b\n",
            "k_:a  :\\b\n",
        ]
    );
    // And it round-trips where the version can represent it.
    let frame = Frame::new(Command::Message).with_header("k:", text);
    let mut out = BytesMut::new();
    encode(&frame, Version::V1_2, &mut out);
    assert_eq!(one_frame_v(Version::V1_2, &out), frame);
}

// ---- EOL = [CR] LF ----

#[test]
fn lf_crlf_and_mixed_line_endings() {
    let want = Frame::new(Command::Send)
        .with_header("destination", "/queue/a")
        .with_header("receipt", "r1")
        .with_body(&b"x\r\n"[..]);
    for input in [
        &b"SEND\ndestination:/queue/a\nreceipt:r1\n\nx\r\n\0"[..],
        b"SEND\r\ndestination:/queue/a\r\nreceipt:r1\r\n\r\nx\r\n\0",
        b"SEND\r\ndestination:/queue/a\nreceipt:r1\r\n\nx\r\n\0",
    ] {
        assert_eq!(one_frame(input), want);
    }
    // EOLs after the NUL are heart-beats, LF or CRLF.
    let out = decode_whole(Version::V1_2, Limits::default(), b"\r\nSEND\n\n\0\n\r\n\n");
    assert_eq!(
        out.items,
        [
            Item::HeartBeat,
            Item::Frame(Frame::new(Command::Send)),
            Item::HeartBeat,
            Item::HeartBeat,
            Item::HeartBeat,
        ]
    );
    assert_eq!(
        decode_error(Version::V1_2, Limits::default(), b"\rSEND\n\n\0"),
        DecodeError::BareCarriageReturn
    );
}
