//! [`Inflating`]: the reading half of permessage-deflate, as a byte stream under tungstenite.
//!
//! tungstenite fails any frame with RSV1 set (it implements no extension), so compressed
//! messages are decompressed before it reads them: this stream reads the socket, follows the
//! frames, and hands tungstenite every frame as it came except compressed messages, which it
//! replaces by one uncompressed frame each. Frames it has no business with (control frames,
//! uncompressed messages, anything malformed) are copied through unread, straight into
//! tungstenite's buffer, so tungstenite still checks and reports everything it did before.
//!
//! A replaced frame keeps the protocol's shape: final, same opcode, RSV bits clear, and (on the
//! server, where tungstenite insists that clients mask) masked with the key 0, which masks
//! nothing. A compressed message that would decompress past the limit is replaced by a frame
//! header announcing one byte over the limit, so tungstenite reports its usual "message too
//! long" without anything large being held.

use std::{
    io,
    pin::Pin,
    task::{Context, Poll, ready},
};

use bytes::{Buf, BufMut, BytesMut};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_tungstenite::tungstenite::protocol::Role;

use crate::codec::{InflateError, Inflater};
use crate::negotiate::Deflate;

/// How much is read from the socket at a time while frames are followed.
const READ_CHUNK: usize = 4096;

/// A byte stream that decompresses the permessage-deflate messages read through it (once
/// [`Inflating::enable`]d; until then, and on connections that did not negotiate compression,
/// it only passes reads and writes through). Writes always pass through: compressed messages
/// are written as frames with RSV1 set by [`crate::WebSocket`].
#[derive(Debug)]
pub struct Inflating<S> {
    inner: S,
    /// None: nothing to decompress (boxed: connections without compression hold a pointer).
    state: Option<Box<State>>,
}

struct State {
    /// Whose side we read from: a server reads masked frames.
    role: Role,
    inflater: Inflater,
    /// The largest message, decompressed.
    max: usize,
    /// Read from the socket, not yet handled. Released when empty, so that an idle
    /// connection holds no buffer here.
    raw: BytesMut,
    /// A replacement frame, ready for tungstenite.
    out: BytesMut,
    /// Bytes of the frame being copied through that are still to be copied.
    pass: u64,
    /// The fragmented message in progress, if any.
    open: Open,
    eof: bool,
}

impl std::fmt::Debug for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("State")
            .field("role", &self.role)
            .field("max", &self.max)
            .field("pass", &self.pass)
            .finish_non_exhaustive()
    }
}

enum Open {
    None,
    /// An uncompressed message: its continuation frames are copied through.
    Plain,
    /// A compressed message: its payload so far, unmasked.
    Compressed {
        opcode: u8,
        data: Vec<u8>,
    },
}

impl<S> Inflating<S> {
    /// A stream that passes everything through until [`Inflating::enable`].
    pub fn new(inner: S) -> Self {
        Inflating { inner, state: None }
    }

    /// From now on, decompress what `deflate` agreed on; `role` is our side of the
    /// connection, `max` the largest message once decompressed.
    pub fn enable(&mut self, deflate: &Deflate, role: Role, max: usize) {
        self.state = Some(Box::new(State {
            role,
            inflater: Inflater::new(deflate),
            max,
            raw: BytesMut::new(),
            out: BytesMut::new(),
            pass: 0,
            open: Open::None,
            eof: false,
        }));
    }

    /// The stream underneath.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }
}

/// A frame header (RFC 6455 §5.2), as far as following frames needs it.
struct Header {
    fin: bool,
    rsv1: bool,
    opcode: u8,
    mask: Option<[u8; 4]>,
    /// Header bytes, mask key included.
    size: usize,
    len: u64,
}

impl Header {
    /// None until `bytes` holds the whole header.
    fn parse(bytes: &[u8]) -> Option<Header> {
        let (&first, &second) = (bytes.first()?, bytes.get(1)?);
        let (len, mut size) = match second & 0x7f {
            126 => (
                u64::from(u16::from_be_bytes(bytes.get(2..4)?.try_into().ok()?)),
                4,
            ),
            127 => (u64::from_be_bytes(bytes.get(2..10)?.try_into().ok()?), 10),
            len => (u64::from(len), 2),
        };
        let mask = if second & 0x80 != 0 {
            let key = bytes.get(size..size + 4)?.try_into().ok()?;
            size += 4;
            Some(key)
        } else {
            None
        };
        Some(Header {
            fin: first & 0x80 != 0,
            rsv1: first & 0x40 != 0,
            opcode: first & 0x0f,
            mask,
            size,
            len,
        })
    }
}

/// Writes a final frame header for `len` payload bytes; masked with the key 0 on the server.
fn put_header(out: &mut BytesMut, role: Role, opcode: u8, len: u64) {
    out.put_u8(0x80 | opcode);
    let mask = if role == Role::Server { 0x80 } else { 0 };
    match len {
        0..=125 => out.put_u8(mask | len as u8),
        126..=0xffff => {
            out.put_u8(mask | 126);
            out.put_u16(len as u16);
        }
        _ => {
            out.put_u8(mask | 127);
            out.put_u64(len);
        }
    }
    if role == Role::Server {
        out.put_u32(0);
    }
}

fn protocol_error(message: &'static str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message)
}

impl State {
    /// Handles the frame at the start of `raw`: false when more bytes are needed first.
    fn step(&mut self) -> io::Result<bool> {
        let Some(header) = Header::parse(&self.raw) else {
            return Ok(false);
        };
        let total = header.size as u64 + header.len;
        // Frames sent by the right side (masked towards a server, not towards a client).
        let well_masked = header.mask.is_some() == (self.role == Role::Server);
        let compressed = match (&self.open, header.opcode) {
            (Open::Compressed { .. }, 1 | 2) => {
                return Err(protocol_error(
                    "a new message began before the compressed one ended",
                ));
            }
            (Open::None, 1 | 2) => header.rsv1 && well_masked,
            (Open::Compressed { .. }, 0) => !header.rsv1 && well_masked,
            (Open::Plain, 0) => {
                if header.fin {
                    self.open = Open::None;
                }
                false
            }
            _ => false,
        };
        if !compressed {
            // tungstenite reads it (and refuses it, if it is wrong).
            if matches!(header.opcode, 1 | 2) && !header.fin && !header.rsv1 {
                self.open = Open::Plain;
            }
            self.pass = total;
            return Ok(true);
        }
        let so_far = match &self.open {
            Open::Compressed { data, .. } => data.len() as u64,
            _ => 0,
        };
        if so_far + header.len > self.max as u64 {
            // Compressed, it is already over the limit: no need to read it.
            let opcode = match &self.open {
                Open::Compressed { opcode, .. } => *opcode,
                _ => header.opcode,
            };
            self.too_large(opcode, so_far + header.len);
            return Ok(true);
        }
        let total = total as usize;
        if self.raw.len() < total {
            self.raw.reserve(total - self.raw.len());
            return Ok(false);
        }
        let mut frame = self.raw.split_to(total);
        frame.advance(header.size);
        if let Some(key) = header.mask {
            for (i, byte) in frame.iter_mut().enumerate() {
                *byte ^= key[i & 3];
            }
        }
        match &mut self.open {
            Open::Compressed { data, .. } => data.extend_from_slice(&frame),
            open => {
                *open = Open::Compressed {
                    opcode: header.opcode,
                    data: frame.to_vec(),
                }
            }
        }
        if header.fin {
            let Open::Compressed { opcode, data } = std::mem::replace(&mut self.open, Open::None)
            else {
                unreachable!("set just above");
            };
            self.finish(opcode, data)?;
        }
        Ok(true)
    }

    /// In place of a message over the limit, a header announcing `len` bytes, which
    /// tungstenite refuses as "message too long"; everything after it is copied through
    /// untouched (whatever tungstenite still reads while the connection closes).
    fn too_large(&mut self, opcode: u8, len: u64) {
        self.open = Open::None;
        put_header(&mut self.out, self.role, opcode, len);
        self.pass = u64::MAX;
    }

    /// A whole compressed message: its replacement frame into `out`.
    fn finish(&mut self, opcode: u8, data: Vec<u8>) -> io::Result<()> {
        match self.inflater.inflate(data, self.max) {
            Ok(message) => {
                self.out.reserve(14 + message.len());
                put_header(&mut self.out, self.role, opcode, message.len() as u64);
                self.out.extend_from_slice(&message);
                Ok(())
            }
            Err(InflateError::TooLarge) => {
                self.too_large(opcode, self.max as u64 + 1);
                Ok(())
            }
            Err(InflateError::Corrupt) => Err(protocol_error(
                "a compressed message is not valid DEFLATE (permessage-deflate)",
            )),
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Inflating<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let Some(state) = this.state.as_deref_mut() else {
            return Pin::new(&mut this.inner).poll_read(cx, buf);
        };
        loop {
            if !state.out.is_empty() {
                let n = state.out.len().min(buf.remaining());
                buf.put_slice(&state.out[..n]);
                state.out.advance(n);
                if state.out.is_empty() {
                    state.out = BytesMut::new();
                }
                return Poll::Ready(Ok(()));
            }
            if state.pass > 0 && !state.raw.is_empty() {
                let n = (state.raw.len() as u64).min(state.pass) as usize;
                let n = n.min(buf.remaining());
                buf.put_slice(&state.raw[..n]);
                state.raw.advance(n);
                state.pass -= n as u64;
                return Poll::Ready(Ok(()));
            }
            if state.eof {
                // What is left of a truncated frame, then the end.
                state.pass = state.raw.len() as u64;
                if state.raw.is_empty() {
                    return Poll::Ready(Ok(()));
                }
                continue;
            }
            if state.pass > 0 {
                // The rest of a frame copied through goes straight into tungstenite's buffer.
                let n = (state.pass.min(buf.remaining() as u64)) as usize;
                let mut direct = ReadBuf::new(buf.initialize_unfilled_to(n));
                ready!(Pin::new(&mut this.inner).poll_read(cx, &mut direct))?;
                let read = direct.filled().len();
                buf.advance(read);
                state.pass -= read as u64;
                state.eof = read == 0;
                return Poll::Ready(Ok(()));
            }
            if state.step()? {
                continue;
            }
            if state.raw.capacity() - state.raw.len() < READ_CHUNK {
                state.raw.reserve(READ_CHUNK);
            }
            let read = tokio_util::io::poll_read_buf(Pin::new(&mut this.inner), cx, &mut state.raw);
            match read {
                Poll::Ready(Ok(0)) => state.eof = true,
                Poll::Ready(Ok(_)) => {}
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => {
                    if state.raw.is_empty() {
                        state.raw = BytesMut::new();
                    }
                    return Poll::Pending;
                }
            }
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Inflating<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}
