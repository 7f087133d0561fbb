//! The message body: who sent it, its sequence number, and two timestamps, in fixed-width
//! lowercase hex (so every frame stays UTF-8 and travels as a WebSocket text message), padded
//! with `.` to the requested size.
//!
//! ```text
//! pppppp ssssssssss tttttttttttttt uuuuuuuuuuuuuu ....
//! publisher  seq     scheduled ns    sent ns      padding
//! ```
//! With [`Padding::Json`] the padding is a JSON notification instead (a ranking of climbers,
//! as the notification pages send), for what compression does to real bodies: a publisher
//! cycles through [`JSON_VARIANTS`] different ones, so that consecutive messages are not copies
//! of each other (a batch of copies would compress far better than real traffic).
//!
//! Timestamps are nanoseconds since [`epoch`], one `Instant` for the whole process: publishers
//! and subscribers share a clock. `scheduled` is when the pacer meant the message to leave
//! (equal to `sent` when unthrottled), so latency measured from it includes any delay the
//! publisher itself suffered (no coordinated omission).

use std::{sync::OnceLock, time::Instant};

/// The smallest body that carries the header.
pub const MIN_BODY: usize = 6 + 10 + 14 + 14;

/// The process-wide clock origin.
pub fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

/// Nanoseconds since [`epoch`].
pub fn now_ns() -> u64 {
    epoch().elapsed().as_nanos() as u64
}

/// What a body says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stamp {
    /// The publisher's index.
    pub publisher: u32,
    /// Its sequence number on this destination, from 0.
    pub seq: u64,
    /// When it was scheduled to be sent, ns since [`epoch`].
    pub scheduled_ns: u64,
    /// When it was handed to the socket, ns since [`epoch`].
    pub sent_ns: u64,
}

impl Stamp {
    /// Writes the header into the first [`MIN_BODY`] bytes of `body`.
    pub fn write(&self, body: &mut [u8]) {
        hex(&mut body[0..6], u64::from(self.publisher));
        hex(&mut body[6..16], self.seq);
        hex(&mut body[16..30], self.scheduled_ns);
        hex(&mut body[30..44], self.sent_ns);
    }

    /// Reads a header written by [`Stamp::write`].
    pub fn read(body: &[u8]) -> Option<Stamp> {
        if body.len() < MIN_BODY {
            return None;
        }
        Some(Stamp {
            publisher: unhex(&body[0..6])? as u32,
            seq: unhex(&body[6..16])?,
            scheduled_ns: unhex(&body[16..30])?,
            sent_ns: unhex(&body[30..44])?,
        })
    }
}

/// What fills a body after its stamp.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Padding {
    /// `.` repeated: the cheapest to produce, and to compress.
    #[default]
    Dots,
    /// A JSON notification: repeated keys, varied names and numbers.
    Json,
}

/// How many different JSON bodies a publisher cycles through: more than DEFLATE's 32 KiB
/// window holds at every body size measured.
pub const JSON_VARIANTS: u64 = 256;

/// The bodies a publisher cycles through: one for [`Padding::Dots`], [`JSON_VARIANTS`] for
/// [`Padding::Json`], each from [`template`].
pub fn templates(size: usize, padding: Padding) -> Vec<Vec<u8>> {
    match padding {
        Padding::Dots => vec![template(size, padding, 0)],
        Padding::Json => (0..JSON_VARIANTS)
            .map(|v| template(size, padding, v))
            .collect(),
    }
}

/// A body of `size` bytes (at least [`MIN_BODY`]) with a zeroed header and `padding`; JSON
/// variant number `variant`.
pub fn template(size: usize, padding: Padding, variant: u64) -> Vec<u8> {
    let mut body = match padding {
        Padding::Dots => vec![b'.'; size.max(MIN_BODY)],
        Padding::Json => json_padding(size.max(MIN_BODY), variant),
    };
    Stamp {
        publisher: 0,
        seq: 0,
        scheduled_ns: 0,
        sent_ns: 0,
    }
    .write(&mut body);
    body
}

/// `size` bytes: room for the stamp, then a ranking notification as JSON (cut at `size`, so not always well formed:
/// what is measured is its bytes). Names and points come from a fixed pseudo-random sequence,
/// so every run sends the same bytes.
fn json_padding(size: usize, variant: u64) -> Vec<u8> {
    const NAMES: [&str; 8] = ["alex", "sam", "noor", "kim", "lea", "tomas", "ines", "yuki"];
    let mut text = " ".repeat(MIN_BODY);
    text.push_str(r#"{"type":"ranking-changed","gym":"north-wall","ranking":["#);
    let mut state = 0x2545_f491_4f6c_dd1du64 ^ variant.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    let mut rank = 1;
    while text.len() < size {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let name = NAMES[(state % 8) as usize];
        text.push_str(&format!(
            r#"{{"rank":{rank},"user":"{name}-{}","points":{},"routes":{}}},"#,
            state % 1000,
            state % 5000,
            state % 40,
        ));
        rank += 1;
    }
    text.truncate(size);
    text.into_bytes()
}

const DIGITS: &[u8; 16] = b"0123456789abcdef";

fn hex(out: &mut [u8], mut value: u64) {
    for byte in out.iter_mut().rev() {
        *byte = DIGITS[(value & 0xf) as usize];
        value >>= 4;
    }
}

/// Hex digit → value; anything else → 0xff. A table keeps [`unhex`] free of branches: it runs
/// once per field of every delivery.
const UNHEX: [u8; 256] = {
    let mut table = [0xffu8; 256];
    let mut i = 0;
    while i < 16 {
        table[DIGITS[i] as usize] = i as u8;
        i += 1;
    }
    table
};

fn unhex(digits: &[u8]) -> Option<u64> {
    let mut value = 0u64;
    let mut bad = 0u8;
    for &digit in digits {
        let v = UNHEX[digit as usize];
        bad |= v;
        value = value << 4 | u64::from(v & 0xf);
    }
    (bad & 0x80 == 0).then_some(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let stamp = Stamp {
            publisher: 42,
            seq: 123_456_789,
            scheduled_ns: 9_876_543_210,
            sent_ns: 9_876_543_999,
        };
        let mut body = template(64, Padding::Dots, 0);
        stamp.write(&mut body);
        assert_eq!(body.len(), 64);
        assert!(body.is_ascii());
        assert_eq!(Stamp::read(&body), Some(stamp));
        assert_eq!(Stamp::read(&body[..10]), None);
        body[3] = b'g';
        assert_eq!(Stamp::read(&body), None, "not a hex digit");
    }

    #[test]
    fn json_padding_is_a_notification_of_the_size_asked() {
        let mut body = template(1024, Padding::Json, 0);
        assert_eq!(body.len(), 1024);
        let stamp = Stamp {
            publisher: 1,
            seq: 2,
            scheduled_ns: 3,
            sent_ns: 4,
        };
        stamp.write(&mut body);
        assert_eq!(Stamp::read(&body), Some(stamp));
        let text = std::str::from_utf8(&body[MIN_BODY..]).unwrap();
        assert!(text.starts_with(r#"{"type":"ranking-changed","#), "{text}");
        assert!(text.contains(r#""ranking":[{"rank":1,"user":""#), "{text}");
        assert_eq!(
            template(1024, Padding::Json, 7),
            template(1024, Padding::Json, 7)
        );
        let variants = templates(1024, Padding::Json);
        assert_eq!(variants.len() as u64, JSON_VARIANTS);
        assert_ne!(variants[0], variants[1], "consecutive messages differ");
        assert_eq!(templates(1024, Padding::Dots).len(), 1);
    }
}
