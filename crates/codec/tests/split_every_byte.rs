//! Chunking never changes what is decoded: a corpus of tricky streams, each fed whole, split in
//! two at every byte, and one byte at a time, must give the same items. Plus: decoding is linear
//! in the input however it is chunked, and every error (limits included) is the right typed error
//! with the right numbers, raised before an oversize frame is buffered.

mod common;

use bytes::BytesMut;
use common::{Outcome, decode_chunks, decode_error, decode_whole};
use stompbox_codec::{Command, DecodeError, Decoder, Frame, Item, Limits, Version};

/// Streams that decode without error, with the version they are decoded under.
const CORPUS: &[(Version, &[u8])] = &[
    // Escapes of every kind, CRLF, a NUL-laden body with content-length, heart-beats around.
    (
        Version::V1_2,
        b"MESSAGE\r\nsubscription:0\r\na\\cb:c\\\\d\\r\\n\r\ncontent-length:4\r\n\r\n\0\0\0\0\0\n\nERROR\nmessage:x\n\nboom\0",
    ),
    (Version::V1_1, b"SEND\ndestination:/q\\n1\nk\\c:v\\\\\n\nbody\0\n"),
    // 1.0: backslashes are text; CRLF heart-beats.
    (Version::V1_0, b"\r\n\r\nSEND\ndestination:/q\\n\na:b:c\n\nx\0\r\n"),
    // Several frames in one buffer, empty bodies, no trailing EOLs.
    (
        Version::V1_2,
        b"SUBSCRIBE\nid:0\ndestination:/queue/foo\nack:client\n\n\0UNSUBSCRIBE\nid:0\n\n\0RECEIPT\nreceipt-id:1\n\n\0",
    ),
    // CONNECT (never unescaped) then CONNECTED, CRLF everywhere.
    (
        Version::V1_2,
        b"CONNECT\r\naccept-version:1.0,1.1,1.2\r\nhost:h\r\nlogin:a\\b\r\nheart-beat:10000,10000\r\n\r\n\0\r\nCONNECTED\r\nversion:1.2\r\n\r\n\0",
    ),
    // content-length:0, explicit; a CR inside a body; a NUL right after the blank line.
    (
        Version::V1_2,
        b"SEND\ncontent-length:0\n\n\0SEND\ndestination:/a\n\n\r\0\nSEND\n\n\0",
    ),
    // A body that contains what looks like a frame, protected by content-length.
    (
        Version::V1_2,
        b"SEND\ncontent-length:10\n\nSEND\n\n\0\n\n\0\0\n",
    ),
    // The spec's DISCONNECT/RECEIPT printed without a blank line, then repeated headers.
    (
        Version::V1_2,
        b"DISCONNECT\nreceipt:77\n\0RECEIPT\nreceipt-id:77\n\0MESSAGE\nfoo:World\nfoo:Hello\n\n\0",
    ),
    // Empty header value, value with colons, UTF-8 text.
    (Version::V1_2, "SEND\nempty:\nurl:http://x:1/\nnom:Zoë ☃\n\n\u{1F600}\0".as_bytes()),
    // Only heart-beats.
    (Version::V1_1, b"\n\n\r\n\n"),
];

/// Every way to feed `input` this test uses: whole, two pieces split at each byte, one byte at a
/// time.
fn chunkings(input: &[u8]) -> impl Iterator<Item = (String, Vec<&[u8]>)> {
    let splits =
        (0..=input.len()).map(move |i| (format!("split at {i}"), vec![&input[..i], &input[i..]]));
    let bytes = std::iter::once(("one byte at a time".to_owned(), input.chunks(1).collect()));
    std::iter::once(("whole".to_owned(), vec![input]))
        .chain(splits)
        .chain(bytes)
}

#[test]
fn corpus_decodes_the_same_however_it_is_split() {
    let mut frames = 0;
    for (version, input) in CORPUS {
        let whole = decode_whole(*version, Limits::default(), input);
        assert_eq!(whole.error, None, "{:?}", String::from_utf8_lossy(input));
        assert_eq!(whole.leftover, 0);
        assert!(!whole.items.is_empty());
        frames += whole
            .items
            .iter()
            .filter(|i| matches!(i, Item::Frame(_)))
            .count();
        for (how, chunks) in chunkings(input) {
            let got = decode_chunks(*version, Limits::default(), chunks);
            assert_eq!(got, whole, "{how}: {:?}", String::from_utf8_lossy(input));
        }
    }
    assert_eq!(frames, 17);
}

#[test]
fn corpus_items_are_what_they_should_be() {
    // Spot checks, so the split test above does not compare wrong results with wrong results.
    let out = decode_whole(CORPUS[0].0, Limits::default(), CORPUS[0].1);
    let Item::Frame(f) = &out.items[0] else {
        panic!()
    };
    assert_eq!(f.header("a:b"), Some("c\\d\r\n"));
    assert_eq!(&f.body[..], b"\0\0\0\0");
    assert_eq!(out.items[1..3], [Item::HeartBeat, Item::HeartBeat]);
    let out = decode_whole(CORPUS[2].0, Limits::default(), CORPUS[2].1);
    assert_eq!(out.items[..2], [Item::HeartBeat, Item::HeartBeat]);
    let Item::Frame(f) = &out.items[2] else {
        panic!()
    };
    assert_eq!(f.header("destination"), Some("/q\\n"));
    assert_eq!(f.header("a"), Some("b:c"));
    let out = decode_whole(CORPUS[6].0, Limits::default(), CORPUS[6].1);
    let Item::Frame(f) = &out.items[0] else {
        panic!()
    };
    assert_eq!(&f.body[..], b"SEND\n\n\0\n\n\0");
    assert_eq!(out.items[1], Item::HeartBeat);
    let out = decode_whole(CORPUS[8].0, Limits::default(), CORPUS[8].1);
    let Item::Frame(f) = &out.items[0] else {
        panic!()
    };
    assert_eq!(f.header("empty"), Some(""));
    assert_eq!(f.header("nom"), Some("Zoë ☃"));
    assert_eq!(&f.body[..], "\u{1F600}".as_bytes());
}

#[test]
fn crlf_heart_beat_split_between_cr_and_lf() {
    // Regression: a CR arriving alone at a frame boundary was taken as the start of a head, so
    // the LF that followed ended an empty "command line" (UnknownCommand "").
    let got = decode_chunks(
        Version::V1_2,
        Limits::default(),
        [&b"SEND\n\n\0\r"[..], b"\n", b"\r", b"\nRECEIPT\n\n\0"],
    );
    assert_eq!(got.error, None);
    assert_eq!(
        got.items,
        [
            Item::Frame(Frame::new(Command::Send)),
            Item::HeartBeat,
            Item::HeartBeat,
            Item::Frame(Frame::new(Command::Receipt)),
        ]
    );
}

// ---- Linear work ----

const MIB: usize = 1024 * 1024;

fn feed_in_chunks(input: &[u8], chunk: usize) -> (Vec<Item>, Decoder) {
    let mut decoder = Decoder::default();
    let mut buf = BytesMut::new();
    let mut items = Vec::new();
    for piece in input.chunks(chunk) {
        buf.extend_from_slice(piece);
        while let Some(item) = decoder.decode(&mut buf).unwrap() {
            items.push(item);
        }
    }
    assert!(buf.is_empty());
    (items, decoder)
}

#[test]
fn one_mib_body_one_byte_at_a_time_is_linear() {
    let body: Vec<u8> = (0..MIB).map(|i| b'a' + (i % 26) as u8).collect();
    let mut with_length = b"SEND\ndestination:/q\ncontent-length:1048576\n\n".to_vec();
    with_length.extend_from_slice(&body);
    with_length.extend_from_slice(b"\0\n");
    let mut without_length = b"SEND\ndestination:/q\n\n".to_vec();
    without_length.extend_from_slice(&body);
    without_length.extend_from_slice(b"\0\n");

    for input in [&with_length, &without_length] {
        let (items, decoder) = feed_in_chunks(input, 1);
        let [Item::Frame(f), Item::HeartBeat] = &items[..] else {
            panic!("{} items", items.len())
        };
        assert_eq!(f.body.len(), MIB);
        assert!(f.body[..] == body[..]);
        // Each byte is searched at most once (content-length bodies are not searched at all);
        // rescanning the buffer on every byte would be about 5 * 10^11.
        let searched = decoder.bytes_searched();
        assert!(
            searched <= input.len() as u64,
            "{searched} > {}",
            input.len()
        );
        if input == &without_length {
            assert!(searched >= MIB as u64, "the body was searched for its NUL");
        } else {
            assert!(searched < 100, "a content-length body is not searched");
        }
    }
}

#[test]
fn work_is_the_same_for_any_chunk_size() {
    let mut input = Vec::new();
    for i in 0..200 {
        input.extend_from_slice(
            format!("SEND\ndestination:/q/{i}\nh:{}\n\n", "v".repeat(i)).as_bytes(),
        );
        input.extend(std::iter::repeat_n(b'b', i * 7));
        input.extend_from_slice(b"\0\r\n");
    }
    let (whole_items, whole) = feed_in_chunks(&input, input.len());
    for chunk in [1, 2, 3, 16, 1000] {
        let (items, decoder) = feed_in_chunks(&input, chunk);
        assert_eq!(items, whole_items, "chunk {chunk}");
        assert_eq!(
            decoder.bytes_searched(),
            whole.bytes_searched(),
            "chunk {chunk}"
        );
    }
    assert!(whole.bytes_searched() <= input.len() as u64);
    assert_eq!(whole_items.len(), 400);
}

// ---- Errors ----

/// Hides the "seen so far" numbers, which legitimately depend on how much had arrived when the
/// limit was crossed; the variant and the limit must not.
fn shape(e: &DecodeError) -> DecodeError {
    match e.clone() {
        DecodeError::FrameTooLarge { max, .. } => DecodeError::FrameTooLarge { size: 0, max },
        DecodeError::BodyTooLarge { max, .. } => DecodeError::BodyTooLarge { size: 0, max },
        DecodeError::HeaderLineTooLong { max, .. } => {
            DecodeError::HeaderLineTooLong { len: 0, max }
        }
        other => other,
    }
}

/// Every chunking of `input` stops at the same items and the same error as `expected`, whose
/// numbers are exact for the whole input; split inputs report at least the limit plus one.
fn assert_error_everywhere(version: Version, limits: Limits, input: &[u8], expected: DecodeError) {
    let whole = decode_whole(version, limits, input);
    assert_eq!(
        whole.error.as_ref(),
        Some(&expected),
        "whole {:?}",
        String::from_utf8_lossy(input)
    );
    for (how, chunks) in chunkings(input) {
        let got: Outcome = decode_chunks(version, limits, chunks);
        assert_eq!(got.items, whole.items, "{how}");
        let error = got.error.unwrap_or_else(|| panic!("{how}: no error"));
        assert_eq!(shape(&error), shape(&expected), "{how}");
        match error {
            DecodeError::FrameTooLarge { size, max } | DecodeError::BodyTooLarge { size, max } => {
                assert!(size > max, "{how}")
            }
            DecodeError::HeaderLineTooLong { len, max } => assert!(len > max, "{how}"),
            _ => assert_eq!(error, expected, "{how}"),
        }
    }
}

#[test]
fn malformed_input_errors() {
    let d = Limits::default();
    let v = Version::V1_2;
    let invalid_length = |value: &str| DecodeError::InvalidContentLength {
        value: value.into(),
    };
    for value in [
        "abc",
        "-1",
        "+1",
        " 5",
        "5 ",
        "",
        "0x10",
        "99999999999999999999999",
    ] {
        let input = format!("SEND\ncontent-length:{value}\n\n\0");
        let input = input.as_bytes();
        assert_error_everywhere(v, d, input, invalid_length(value));
    }
    let cases: &[(&[u8], DecodeError)] = &[
        (
            b"\nSEND\ncontent-length:2\n\nabc\0",
            DecodeError::MissingNul { content_length: 2 },
        ),
        (
            b"SEND\ncontent-length:0\n\nx\0",
            DecodeError::MissingNul { content_length: 0 },
        ),
        (
            b"FOO\n\n\0",
            DecodeError::UnknownCommand {
                command: "FOO".into(),
            },
        ),
        (
            b"send\n\n\0",
            DecodeError::UnknownCommand {
                command: "send".into(),
            },
        ),
        (
            b"SEND \n\n\0",
            DecodeError::UnknownCommand {
                command: "SEND ".into(),
            },
        ),
        (b"\xffSEND\n\n\0", DecodeError::InvalidUtf8),
        (b"SEND\nk:\xc3\x28\n\n\0", DecodeError::InvalidUtf8),
        (b"SEND\n\xe2\x82:v\n\n\0", DecodeError::InvalidUtf8),
        // Escaped bytes that unescape to invalid UTF-8 are still caught.
        (b"SEND\nk:\\\\\xff\n\n\0", DecodeError::InvalidUtf8),
        (
            b"SEND\nnocolon\n\n\0",
            DecodeError::MalformedHeader {
                line: "nocolon".into(),
            },
        ),
        (
            b"SEND\n:v\n\n\0",
            DecodeError::MalformedHeader { line: ":v".into() },
        ),
        (
            b"SEND\nk:\\t\n\n\0",
            DecodeError::InvalidEscape {
                sequence: "\\t".into(),
            },
        ),
        (b"SEND\n\n\0\rX", DecodeError::BareCarriageReturn),
    ];
    for (input, expected) in cases {
        assert_error_everywhere(v, d, input, expected.clone());
    }
    // Frames before the error are still delivered, in every chunking.
    let out = decode_whole(v, d, b"SEND\n\n\0\nFOO\n\n\0");
    assert_eq!(
        out.items,
        [Item::Frame(Frame::new(Command::Send)), Item::HeartBeat]
    );
}

#[test]
fn nul_and_bare_cr_in_header_text_are_refused_in_every_version() {
    // Forwarded, `x:a\0MESSAGE` would end the frame early for a subscriber that splits on NUL,
    // and a bare CR would start a new line for one that splits on CR. The error names the header
    // (as sent: the name is quoted with Rust escapes in the message).
    let nul = |name: &str| DecodeError::NulInHeader { name: name.into() };
    let cr = |name: &str| DecodeError::BareCarriageReturnInHeader { name: name.into() };
    let cases: &[(&[u8], DecodeError)] = &[
        (b"SEND\ndestination:/q\nx:a\0MESSAGE\n\n\0", nul("x")),
        (b"SEND\nx:\0\n\n\0", nul("x")),
        (b"SEND\nx\0y:v\n\n\0", nul("x\0y")),
        (b"SEND\r\nx:a\rdestination:/q\r\n\r\n\0", cr("x")),
        (b"SEND\nx:a\r\r\n\n\0", cr("x")),
        (b"SEND\r\nx:\r\r\n\r\n\0", cr("x")),
        (b"SEND\nx\ry:v\n\n\0", cr("x\ry")),
        // Whichever comes first on the line is named.
        (b"SEND\nx:\r\0\n\n\0", cr("x")),
        (b"SEND\nx:\0\r\n\n\0", nul("x")),
        // Before the frame's content-length is known, and in a body-less frame.
        (b"SEND\nk:\0\ncontent-length:1\n\nx\0", nul("k")),
        (b"DISCONNECT\nreceipt:1\r2\n\0", cr("receipt")),
        // CONNECT is never unescaped, but a raw NUL or CR is still refused.
        (b"CONNECT\nlogin:a\0b\n\n\0", nul("login")),
        (b"CONNECT\npasscode:a\rb\n\n\0", cr("passcode")),
    ];
    for version in Version::ALL {
        for (input, expected) in cases {
            assert_error_everywhere(version, Limits::default(), input, expected.clone());
        }
        // The frame before the bad one is still delivered, however the stream is split.
        let out = decode_whole(version, Limits::default(), b"SEND\n\n\0SEND\nx:\0\n\n\0");
        assert_eq!(out.items, [Item::Frame(Frame::new(Command::Send))]);
        assert_eq!(out.error, Some(nul("x")));
    }
}

#[test]
fn cr_and_nul_where_they_are_allowed() {
    // CRLF line ends and heart-beats, CR and NUL in bodies (NUL with content-length), in every
    // version; a CR in a 1.2 value written as the `\r` escape. Each decodes the same however it
    // is split (the corpus test's property).
    let streams: &[(Version, &[u8])] = &[
        (
            Version::V1_0,
            b"\r\nSEND\r\nk:v\r\ncontent-length:3\r\n\r\n\r\0\r\0\r\n",
        ),
        (Version::V1_1, b"SEND\r\nk:v\r\n\r\na\rb\0\r\n"),
        (Version::V1_2, b"SEND\nk:a\\rb\\r\n\n\0"),
    ];
    for (version, input) in streams {
        let whole = decode_whole(*version, Limits::default(), input);
        assert_eq!(whole.error, None, "{:?}", String::from_utf8_lossy(input));
        assert_eq!(whole.leftover, 0);
        for (how, chunks) in chunkings(input) {
            assert_eq!(
                decode_chunks(*version, Limits::default(), chunks),
                whole,
                "{how}"
            );
        }
    }
    let f = common::one_frame_v(Version::V1_0, &streams[0].1[2..streams[0].1.len() - 2]);
    assert_eq!(f.header("k"), Some("v"));
    assert_eq!(&f.body[..], b"\r\0\r");
    let f = common::one_frame_v(Version::V1_1, &streams[1].1[..streams[1].1.len() - 2]);
    assert_eq!(&f.body[..], b"a\rb");
    let f = common::one_frame(streams[2].1);
    assert_eq!(f.header("k"), Some("a\rb\r"));
}

const SMALL: Limits = Limits {
    max_frame_size: 64,
    max_headers: 3,
    max_header_line: 20,
    max_body_size: 24,
};

#[test]
fn every_limit_is_a_typed_error_with_its_numbers() {
    let v = Version::V1_2;
    // Exactly at every limit is fine, whatever the chunking.
    // (A 20-byte line before its CRLF: split after the CR, the CR must not count.)
    let at_limits = b"SEND\r\n123456789012345:4567\r\nb:12\r\nc:\r\n\r\n123456789012345678901234\0";
    assert_eq!(at_limits.len() - 1, SMALL.max_frame_size); // head 40 + body 24
    for (how, chunks) in chunkings(at_limits) {
        let got = decode_chunks(v, SMALL, chunks);
        assert_eq!(got.error, None, "{how}");
        assert_eq!(got.items.len(), 1, "{how}");
    }

    let cases: &[(&[u8], DecodeError)] = &[
        (
            b"SEND\na:1\nb:2\nc:3\nd:4\n\n\0",
            DecodeError::TooManyHeaders { max: 3 },
        ),
        (
            b"SEND\n12345678901234567:4567\n\n\0",
            DecodeError::HeaderLineTooLong { len: 22, max: 20 },
        ),
        (
            b"SEND\n12345678901234567:4567\r\n\r\n\0",
            DecodeError::HeaderLineTooLong { len: 22, max: 20 },
        ),
        (
            b"SUBSCRIBE_SUBSCRIBE_X\n\n\0",
            DecodeError::HeaderLineTooLong { len: 21, max: 20 },
        ),
        // content-length over the body limit: an error as soon as the head is complete.
        (
            b"SEND\ncontent-length:25\n\n",
            DecodeError::BodyTooLarge { size: 25, max: 24 },
        ),
        (
            b"SEND\ncontent-length:99999\n\n",
            DecodeError::BodyTooLarge {
                size: 99_999,
                max: 24,
            },
        ),
        // No content-length: an error once the 25th body byte arrives, the NUL never needed.
        (
            b"SEND\n\n1234567890123456789012345",
            DecodeError::BodyTooLarge { size: 25, max: 24 },
        ),
        // A body within its limit but a frame over its own: head 41 + body 24 = 65.
        (
            b"SEND\naaaaaaaaaaaaaaa:1\nbbbbbbbbbbbbbb:2\n\n123456789012345678901234\0",
            DecodeError::FrameTooLarge { size: 65, max: 64 },
        ),
        (
            b"SEND\naaaaaaaaaaaaaa:1\ncontent-length:24\n\n",
            DecodeError::FrameTooLarge { size: 65, max: 64 },
        ),
    ];
    for (input, expected) in cases {
        assert_error_everywhere(v, SMALL, input, expected.clone());
    }
    // A head over the frame limit (with a laxer line limit), detected before its blank line.
    let lax = Limits {
        max_header_line: 1000,
        max_headers: 100,
        ..SMALL
    };
    let mut input = b"SEND\n".to_vec();
    for i in 0..10 {
        input.extend_from_slice(format!("header-{i}:value\n").as_bytes());
    }
    assert_error_everywhere(
        v,
        lax,
        &input,
        DecodeError::FrameTooLarge { size: 65, max: 64 },
    );
}

#[test]
fn oversize_frames_are_refused_before_they_are_buffered() {
    let limits = Limits {
        max_body_size: 1000,
        max_frame_size: 2000,
        ..Limits::default()
    };
    // content-length announcing 1 MiB: refused with zero body bytes buffered.
    let mut decoder = Decoder::new(limits);
    let mut buf = BytesMut::from(&b"SEND\ncontent-length:1048576\n\n"[..]);
    assert_eq!(
        decoder.decode(&mut buf),
        Err(DecodeError::BodyTooLarge {
            size: MIB,
            max: 1000
        })
    );
    assert!(
        buf.capacity() < 4096,
        "no room reserved for the announced body"
    );

    // No content-length: fed 100 bytes at a time, refused once 1001 body bytes are in.
    let mut decoder = Decoder::new(limits);
    let mut buf = BytesMut::from(&b"SEND\n\n"[..]);
    let mut fed = 0;
    let err = loop {
        buf.extend_from_slice(&[b'x'; 100]);
        fed += 100;
        match decoder.decode(&mut buf) {
            Ok(None) => continue,
            Ok(Some(item)) => panic!("{item:?}"),
            Err(e) => break e,
        }
    };
    assert_eq!(
        err,
        DecodeError::BodyTooLarge {
            size: 1100,
            max: 1000
        }
    );
    assert_eq!(fed, 1100);

    // A header line without end: refused once it passes the line limit.
    let limits = Limits {
        max_header_line: 100,
        ..Limits::default()
    };
    let mut decoder = Decoder::new(limits);
    let mut buf = BytesMut::from(&b"SEND\nk:"[..]);
    let mut fed = 0;
    let err = loop {
        buf.extend_from_slice(&[b'v'; 10]);
        fed += 10;
        if let Err(e) = decoder.decode(&mut buf) {
            break e;
        }
    };
    assert_eq!(err, DecodeError::HeaderLineTooLong { len: 102, max: 100 });
    assert_eq!(fed, 100);
}

#[test]
fn errors_numbers_for_whole_inputs() {
    // decode_error on the whole input gives the exact numbers documented on the variants.
    assert_eq!(
        decode_error(Version::V1_2, SMALL, b"SEND\nk:0123456789abcdefghij\n\n\0"),
        DecodeError::HeaderLineTooLong { len: 22, max: 20 }
    );
    let long_command = "X".repeat(100);
    assert_eq!(
        decode_error(
            Version::V1_2,
            Limits::default(),
            format!("{long_command}\n\n\0").as_bytes()
        ),
        DecodeError::UnknownCommand {
            command: "X".repeat(32)
        }
    );
}
