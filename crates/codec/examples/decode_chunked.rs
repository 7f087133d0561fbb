//! Decodes one SEND frame with a body of N bytes, fed in 8 KiB reads, and prints what it decoded.
//! A fixed workload for counting instructions, which unlike time is deterministic:
//!
//! ```sh
//! cargo build --release -p stompbox-codec --example decode_chunked
//! valgrind --tool=callgrind --callgrind-out-file=/dev/null --toggle-collect='*decode_in_chunks*' \
//!     target/release/examples/decode_chunked 1048576 nul    # or: ... 1048576 length
//! ```
//!
//! `docs/benchmarks.md` uses the totals for several N to show decoding is linear in body size.

use bytes::BytesMut;
use stompbox_codec::{Decoder, Item, Limits};

fn main() {
    let mut args = std::env::args().skip(1);
    let len: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(1 << 20);
    let with_length = args.next().as_deref() != Some("nul");
    let mut input = b"SEND\ndestination:/queue/orders\n".to_vec();
    if with_length {
        input.extend_from_slice(format!("content-length:{len}\n").as_bytes());
    }
    input.push(b'\n');
    input.extend((0..len).map(|i| b'a' + (i % 26) as u8));
    input.push(0);

    let (body, searched) = decode_in_chunks(&input);
    println!("body {body} bytes, {searched} bytes searched");
}

/// The measured part: everything the decoder does, and the copies into the read buffer.
#[inline(never)]
fn decode_in_chunks(input: &[u8]) -> (usize, u64) {
    let mut decoder = Decoder::new(Limits::UNLIMITED);
    let mut buf = BytesMut::with_capacity(8 * 1024);
    for piece in input.chunks(8 * 1024) {
        buf.extend_from_slice(piece);
        while let Some(item) = decoder.decode(&mut buf).expect("valid frame") {
            if let Item::Frame(frame) = item {
                return (frame.body.len(), decoder.bytes_searched());
            }
        }
    }
    panic!("no frame")
}
