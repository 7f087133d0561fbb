//! Codec throughput, and a comparison with the `stomp-parser` crate (nom-based, whole frames).
//!
//! Run: `cargo bench -p stompbox-codec --bench codec` (results: `docs/benchmarks.md`).
//!
//! Every decode iteration starts from the frame's bytes in a `&[u8]` and includes the one copy
//! each API needs: into a `BytesMut` for ours, into the `Vec<u8>` that `stomp-parser` takes.

use std::hint::black_box;
use std::time::Duration;

use bytes::BytesMut;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use stomp_parser::client::ClientFrame;
use stompbox_codec::{Command, Decoder, Frame, Item, Limits, Version, encode};

const KIB: usize = 1024;
const MIB: usize = 1024 * KIB;
/// The read size the chunked benchmarks feed: a typical socket read / WebSocket message.
const CHUNK: usize = 8 * KIB;

/// `len` bytes of printable text.
fn body(len: usize) -> Vec<u8> {
    (0..len).map(|i| b'a' + (i % 26) as u8).collect()
}

/// A SEND with 3 headers (destination, content-type, content-length) and a `len`-byte body.
fn send_frame(len: usize) -> Vec<u8> {
    let mut v = format!(
        "SEND\ndestination:/queue/orders\ncontent-type:application/json\ncontent-length:{len}\n\n"
    )
    .into_bytes();
    v.extend(body(len));
    v.push(0);
    v
}

/// The same without content-length: the decoder must search the body for its NUL.
fn send_frame_no_length(len: usize) -> Vec<u8> {
    let mut v = b"SEND\ndestination:/queue/orders\ncontent-type:application/json\n\n".to_vec();
    v.extend(body(len));
    v.push(0);
    v
}

fn decode_whole(input: &[u8]) -> Frame {
    let mut buf = BytesMut::from(input);
    match Decoder::new(Limits::UNLIMITED).decode(&mut buf) {
        Ok(Some(Item::Frame(f))) => f,
        other => panic!("{other:?}"),
    }
}

fn decode_chunked(input: &[u8]) -> Frame {
    let mut decoder = Decoder::new(Limits::UNLIMITED);
    let mut buf = BytesMut::with_capacity(CHUNK);
    for piece in input.chunks(CHUNK) {
        buf.extend_from_slice(piece);
        if let Some(Item::Frame(f)) = decoder.decode(&mut buf).unwrap() {
            return f;
        }
    }
    panic!("no frame")
}

fn stomp_parser(input: &[u8]) -> ClientFrame {
    ClientFrame::try_from(input.to_vec()).expect("stomp-parser accepts the frame")
}

fn decode(c: &mut Criterion) {
    let mut group = c.benchmark_group("decode");
    for (name, len) in [("small_100B", 100), ("body_4KiB", 4 * KIB)] {
        let input = send_frame(len);
        // Both decoders must agree on what they decode before being timed.
        assert_eq!(decode_whole(&input).body.len(), len);
        let ClientFrame::Send(f) = stomp_parser(&input) else {
            panic!()
        };
        assert_eq!(f.body().map(<[u8]>::len), Some(len));
        assert_eq!(f.destination().value(), "/queue/orders");

        group.throughput(Throughput::Bytes(input.len() as u64));
        group.bench_with_input(BenchmarkId::new("stompbox", name), &input, |b, i| {
            b.iter(|| decode_whole(black_box(i)))
        });
        group.bench_with_input(BenchmarkId::new("stomp-parser", name), &input, |b, i| {
            b.iter(|| stomp_parser(black_box(i)))
        });
    }
    group.finish();

    // Large bodies arriving in 8 KiB reads: linear in size, with and without content-length.
    let mut group = c.benchmark_group("decode_chunked_8KiB");
    group
        .sample_size(20)
        .measurement_time(Duration::from_secs(4));
    for len in [64 * KIB, 256 * KIB, MIB, 4 * MIB] {
        for (kind, input) in [
            ("content-length", send_frame(len)),
            ("nul-search", send_frame_no_length(len)),
        ] {
            assert_eq!(decode_chunked(&input).body.len(), len);
            group.throughput(Throughput::Bytes(input.len() as u64));
            group.bench_with_input(BenchmarkId::new(kind, len), &input, |b, i| {
                b.iter(|| decode_chunked(black_box(i)))
            });
        }
    }
    group.finish();

    // stomp-parser has no incremental mode: for reference, 1 MiB decoded from one whole buffer.
    let mut group = c.benchmark_group("decode_whole_1MiB");
    group
        .sample_size(20)
        .measurement_time(Duration::from_secs(4));
    let input = send_frame(MIB);
    group.throughput(Throughput::Bytes(input.len() as u64));
    group.bench_function("stompbox", |b| b.iter(|| decode_whole(black_box(&input))));
    group.bench_function("stomp-parser", |b| {
        b.iter(|| stomp_parser(black_box(&input)))
    });
    group.finish();
}

fn encode_frames(c: &mut Criterion) {
    let mut group = c.benchmark_group("encode");
    for (name, len) in [
        ("small_100B", 100),
        ("body_4KiB", 4 * KIB),
        ("body_1MiB", MIB),
    ] {
        let frame = Frame::new(Command::Send)
            .with_header("destination", "/queue/orders")
            .with_header("content-type", "application/json")
            .with_body(body(len));
        let mut out = BytesMut::new();
        encode(&frame, Version::V1_2, &mut out);
        assert_eq!(
            decode_whole(&out),
            frame.clone().with_header("content-length", len.to_string())
        );
        group.throughput(Throughput::Bytes(out.len() as u64));
        group.bench_with_input(BenchmarkId::new("stompbox", name), &frame, |b, f| {
            let mut out = BytesMut::with_capacity(len + 256);
            b.iter(|| {
                out.clear();
                encode(black_box(f), Version::V1_2, &mut out);
                black_box(out.len())
            })
        });
    }
    group.finish();
}

criterion_group!(benches, decode, encode_frames);
criterion_main!(benches);
