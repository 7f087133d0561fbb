//! Properties over generated input.
//!
//! 1. Round trip: any frame whose header text the version can carry, encoded and decoded from a
//!    random chunking (several frames and heart-beats per stream), comes back identical, up to
//!    exactly what the encoder is documented to change (see [`expected`]).
//! 2. Arbitrary bytes, randomly chunked, never panic; every frame that comes out respects the
//!    limits; and the chunking never changes what comes out.
//!
//! Case counts keep the whole codec suite well under 30 s in a debug build. The RNG seed is fixed
//! so every run checks the same cases (tests are deterministic); change [`SEED`] locally to explore
//! further (the fuzz targets in `fuzz/` do the open-ended search).

mod common;

use bytes::BytesMut;
use common::decode_chunks;
use proptest::prelude::*;
use proptest::test_runner::RngSeed;
use stompbox_codec::{Command, DecodeError, Decoder, Frame, Item, Limits, Version, encode};

/// The fixed seed of every property below.
const SEED: u64 = 0x5707_b0c5;

/// Characters that exercise every escaping rule, mixed with arbitrary ones.
fn text_char() -> impl Strategy<Value = char> {
    prop_oneof![
        3 => prop::sample::select(vec![
            'a', 'z', '-', ' ', ':', '\\', '\r', '\n', 'c', 'n', 'r', 't', '\0', 'é', '☃', '😀',
        ]),
        1 => any::<char>(),
    ]
}

fn text(max: usize) -> impl Strategy<Value = String> {
    prop::collection::vec(text_char(), 0..max).prop_map(String::from_iter)
}

/// How a frame's headers are escaped, from the spec's "Value Encoding".
#[derive(Clone, Copy, Debug, PartialEq)]
enum Escaping {
    /// 1.0, or CONNECT/STOMP/CONNECTED in any version: no escapes exist.
    None,
    V1_1,
    V1_2,
}

fn escaping(version: Version, command: Command) -> Escaping {
    match (version, command.escapes_headers()) {
        (Version::V1_0, _) | (_, false) => Escaping::None,
        (Version::V1_1, true) => Escaping::V1_1,
        (Version::V1_2, true) => Escaping::V1_2,
    }
}

/// A header name: never empty (`:value` is malformed, and the encoder has no way to send it).
/// Everything else, including NUL, `:`, CR and LF, is generated for every version; [`expected`]
/// says what survives.
fn name() -> impl Strategy<Value = String> {
    text(10).prop_map(|n| if n.is_empty() { format!("x{n}") } else { n })
}

/// A header value: any text, for every version; [`expected`] says what survives.
fn value() -> impl Strategy<Value = String> {
    text(16)
}

fn body() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        1 => Just(Vec::new()),
        3 => prop::collection::vec(prop_oneof![Just(0u8), Just(b'\n'), any::<u8>()], 0..200),
    ]
}

fn command() -> impl Strategy<Value = Command> {
    prop::sample::select(Command::ALL.to_vec())
}

/// A frame of any command, with headers the version can carry (a `content-length` header with an
/// arbitrary value now and then, which the encoder must replace).
fn frame() -> impl Strategy<Value = Frame> {
    command().prop_flat_map(|command| {
        let header = prop_oneof![
            8 => (name(), value()),
            1 => ("[0-9a-z ]{0,4}").prop_map(|v| ("content-length".to_owned(), v)),
        ];
        (prop::collection::vec(header, 0..8), body()).prop_map(move |(headers, body)| {
            let mut frame = Frame::new(command).with_body(body);
            for (n, v) in headers {
                frame.headers.push(n, v);
            }
            frame
        })
    })
}

/// The frame the decoder must return for `sent`, encoded with `version`:
/// - a NUL in header text is sent as a space in every version: none has an escape for it, and
///   decoders refuse a raw one;
/// - no escapes exist for 1.0 and CONNECT/STOMP/CONNECTED, so the encoder sends CR and LF as
///   spaces, and a colon in a name as `_` (a colon in a value is fine: the first one splits);
/// - 1.1 has no escape for CR and decoders refuse a CR that is not part of a CRLF, so every CR
///   of a 1.1 value is sent as a space;
/// - `content-length` headers of the frame are dropped, and the true length is appended last for
///   a non-empty body (none for an empty one).
fn expected(sent: &Frame, version: Version) -> Frame {
    let e = escaping(version, sent.command);
    let map = |s: &str, is_name: bool| -> String {
        s.chars()
            .map(|c| match (c, e) {
                ('\0', _) | ('\r', Escaping::None | Escaping::V1_1) | ('\n', Escaping::None) => ' ',
                (':', Escaping::None) if is_name => '_',
                (c, _) => c,
            })
            .collect()
    };
    let mut want = Frame::new(sent.command).with_body(sent.body.clone());
    for (n, v) in sent.headers.iter() {
        if n != "content-length" {
            want.headers.push(map(n, true), map(v, false));
        }
    }
    if !sent.body.is_empty() {
        want.headers
            .push("content-length", sent.body.len().to_string());
    }
    want
}

/// Cuts `input` into pieces whose sizes cycle through `sizes`.
fn chunk<'a>(input: &'a [u8], sizes: &[usize]) -> Vec<&'a [u8]> {
    let mut out = Vec::new();
    let mut rest = input;
    for size in sizes.iter().cycle() {
        if rest.is_empty() {
            break;
        }
        let (piece, tail) = rest.split_at((*size).min(rest.len()));
        out.push(piece);
        rest = tail;
    }
    out
}

fn chunk_sizes() -> impl Strategy<Value = Vec<usize>> {
    prop::collection::vec(
        prop_oneof![1 => 1usize..3, 3 => 1usize..64, 1 => 64usize..600],
        1..8,
    )
}

fn version() -> impl Strategy<Value = Version> {
    prop::sample::select(Version::ALL.to_vec())
}

/// A stream of frames for one version, each followed by 0..3 heart-beats (LF or CRLF).
fn stream() -> impl Strategy<Value = (Version, Vec<(Frame, Vec<bool>)>)> {
    version().prop_flat_map(|v| {
        let beats = prop::collection::vec(any::<bool>(), 0..3);
        (Just(v), prop::collection::vec((frame(), beats), 1..5))
    })
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 400,
        rng_seed: RngSeed::Fixed(SEED),
        ..ProptestConfig::default()
    })]

    #[test]
    fn encode_then_decode_from_any_chunking((version, frames) in stream(), sizes in chunk_sizes()) {
        let mut wire = BytesMut::new();
        let mut want = Vec::new();
        for (frame, beats) in &frames {
            encode(frame, version, &mut wire);
            want.push(Item::Frame(expected(frame, version)));
            for crlf in beats {
                wire.extend_from_slice(if *crlf { b"\r\n" } else { b"\n" });
                want.push(Item::HeartBeat);
            }
        }
        let got = decode_chunks(version, Limits::UNLIMITED, chunk(&wire, &sizes));
        prop_assert_eq!(got.error, None);
        prop_assert_eq!(got.leftover, 0);
        prop_assert_eq!(got.items, want);
    }

    #[test]
    fn representable_frames_are_unchanged(generated in frame(), v in version()) {
        // The same property stated directly: where the version can carry the text and the frame
        // has no content-length of its own, decode(encode(f)) == f plus the true length. The
        // generated frame is made representable by leaving out what the version cannot carry
        // (rather than rejecting the case: few generated frames have no NUL at all).
        let e = escaping(v, generated.command);
        let carried = |c: char, is_name: bool| match c {
            '\0' => false,
            '\r' => e == Escaping::V1_2,
            '\n' => e != Escaping::None,
            ':' => e != Escaping::None || !is_name,
            _ => true,
        };
        let keep = |text: &str, is_name: bool| -> String {
            text.chars().filter(|&c| carried(c, is_name)).collect()
        };
        let mut frame = Frame::new(generated.command).with_body(generated.body.clone());
        for (n, val) in generated.headers.iter().filter(|(n, _)| *n != "content-length") {
            let n = keep(n, true);
            let n = if n.is_empty() { "x".to_owned() } else { n };
            frame.headers.push(n, keep(val, false));
        }
        let mut wire = BytesMut::new();
        encode(&frame, v, &mut wire);
        let out = common::decode_whole(v, Limits::UNLIMITED, &wire);
        let mut want = frame.clone();
        if !frame.body.is_empty() {
            want.headers.push("content-length", frame.body.len().to_string());
        }
        prop_assert_eq!(out.items, vec![Item::Frame(want)]);
    }
}

/// Bytes that look like STOMP often enough to reach deep into the decoder.
fn stompish_bytes() -> impl Strategy<Value = Vec<u8>> {
    let token = prop_oneof![
        prop::sample::select(vec![
            &b"SEND\n"[..],
            b"MESSAGE\r\n",
            b"CONNECT\n",
            b"ERROR\n",
            b"content-length:",
            b"\n",
            b"\r\n",
            b"\r",
            b"\0",
            b":",
            b"\\",
            b"\\c",
            b"\\r",
            b"\\t",
            b"3",
            b"0",
            b"12",
            b"a",
            b"\xff",
            b"\xc3",
            b"\xa9",
            b"dest:/q\n",
            b"\n\n",
        ])
        .prop_map(<[u8]>::to_vec),
        prop::collection::vec(any::<u8>(), 1..4),
    ];
    prop::collection::vec(token, 0..80).prop_map(|t| t.concat())
}

fn small_limits() -> impl Strategy<Value = Limits> {
    (1usize..120, 0usize..6, 1usize..40, 0usize..60).prop_map(|(f, h, l, b)| Limits {
        max_frame_size: f,
        max_headers: h,
        max_header_line: l,
        max_body_size: b,
    })
}

/// Decodes chunk by chunk like [`decode_chunks`], also checking each frame against `limits`
/// using the bytes it consumed (head + body + NUL).
fn decode_checking_limits(
    version: Version,
    limits: Limits,
    chunks: &[&[u8]],
) -> Result<(), TestCaseError> {
    let mut decoder = Decoder::new(limits);
    decoder.set_version(version);
    let mut buf = BytesMut::new();
    let mut consumed = 0usize; // since the last item
    for piece in chunks {
        buf.extend_from_slice(piece);
        loop {
            let before = buf.len();
            let result = decoder.decode(&mut buf);
            consumed += before - buf.len();
            match result {
                Ok(Some(Item::Frame(f))) => {
                    prop_assert!(f.body.len() <= limits.max_body_size);
                    prop_assert!(
                        consumed - 1 <= limits.max_frame_size,
                        "frame of {} bytes",
                        consumed - 1
                    );
                    prop_assert!(f.headers.len() <= limits.max_headers);
                    for (n, v) in f.headers.iter() {
                        // Unescaping only shortens text, so this bounds the raw line too.
                        prop_assert!(n.len() + 1 + v.len() <= limits.max_header_line);
                        // Never a NUL; a CR only from 1.2's `\r` escape.
                        prop_assert!(!n.contains('\0') && !v.contains('\0'));
                        if version != Version::V1_2 || !f.command.escapes_headers() {
                            prop_assert!(!n.contains('\r') && !v.contains('\r'));
                        }
                    }
                    prop_assert!(f.command.as_str().len() <= limits.max_header_line);
                    consumed = 0;
                }
                Ok(Some(Item::HeartBeat)) => consumed = 0,
                Ok(None) => break,
                Err(_) => return Ok(()),
            }
        }
    }
    Ok(())
}

fn shape(e: &Option<DecodeError>) -> Option<std::mem::Discriminant<DecodeError>> {
    e.as_ref().map(std::mem::discriminant)
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 1000,
        rng_seed: RngSeed::Fixed(SEED),
        ..ProptestConfig::default()
    })]

    #[test]
    fn arbitrary_bytes_never_panic_and_respect_limits(
        input in prop_oneof![stompish_bytes(), prop::collection::vec(any::<u8>(), 0..300)],
        sizes in chunk_sizes(),
        limits in small_limits(),
        v in version(),
    ) {
        decode_checking_limits(v, limits, &chunk(&input, &sizes))?;
        decode_checking_limits(v, Limits::default(), &chunk(&input, &sizes))?;
    }

    #[test]
    fn chunking_never_changes_the_outcome(
        input in stompish_bytes(),
        sizes in chunk_sizes(),
        limits in small_limits(),
        v in version(),
    ) {
        // No limit can be reached: the items and the error are exactly the same, and so are the
        // bytes left over when there is no error (after one, how much was buffered depends on
        // when it was seen).
        let whole = common::decode_whole(v, Limits::default(), &input);
        let split = decode_chunks(v, Limits::default(), chunk(&input, &sizes));
        prop_assert_eq!(&split.items, &whole.items);
        prop_assert_eq!(&split.error, &whole.error);
        if whole.error.is_none() {
            prop_assert_eq!(split.leftover, whole.leftover);
        }
        // Tight limits: the same items, and an error in one exactly when in the other. (Which
        // limit is reported first may depend on what had arrived, so only errors' presence is
        // compared, plus the variant when no limit was involved.)
        let whole = common::decode_whole(v, limits, &input);
        let split = decode_chunks(v, limits, chunk(&input, &sizes));
        prop_assert_eq!(&split.items, &whole.items);
        prop_assert_eq!(split.error.is_some(), whole.error.is_some());
        let is_limit = |e: &Option<DecodeError>| matches!(e, Some(
            DecodeError::FrameTooLarge { .. } | DecodeError::BodyTooLarge { .. }
            | DecodeError::HeaderLineTooLong { .. } | DecodeError::TooManyHeaders { .. }));
        if !is_limit(&whole.error) && !is_limit(&split.error) {
            prop_assert_eq!(shape(&split.error), shape(&whole.error));
        }
    }
}

#[test]
fn v1_1_value_with_crs_is_stable_across_hops() {
    // Found by the `roundtrip` fuzz target: 1.1 sent a value's trailing CR as is, the decoder read
    // it as part of a CRLF, so every decode/encode hop lost one more CR. A CR that is not part of
    // a CRLF is now refused in every version, so the wire the fuzzer found is an error, and the
    // encoder sends each CR of a 1.1 value (a 1.2 sender's `\r`, delivered to a 1.1 subscriber)
    // as a space: changed once, then stable.
    let refused = common::decode_whole(
        Version::V1_1,
        Limits::default(),
        b"COMMIT\ntransaction:\r\r\r\r\n\n\0",
    );
    assert_eq!(
        refused.error,
        Some(DecodeError::BareCarriageReturnInHeader {
            name: "transaction".into()
        })
    );
    let hop = |wire: &[u8]| -> (Frame, BytesMut) {
        let out = common::decode_whole(Version::V1_1, Limits::default(), wire);
        let [Item::Frame(f)] = &out.items[..] else {
            panic!("{out:?}")
        };
        let mut next = BytesMut::new();
        encode(f, Version::V1_1, &mut next);
        (f.clone(), next)
    };
    let mut w1 = BytesMut::new();
    let sent = Frame::new(Command::Commit).with_header("transaction", "a\r\r\r");
    encode(&sent, Version::V1_1, &mut w1);
    assert_eq!(&w1[..], b"COMMIT\ntransaction:a   \n\n\0");
    let (f2, w2) = hop(&w1);
    assert_eq!(f2.header("transaction"), Some("a   "));
    let (f3, w3) = hop(&w2);
    assert_eq!((f3, w3), (f2, w2));
}
