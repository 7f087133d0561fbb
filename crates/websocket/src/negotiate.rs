//! The `permessage-deflate` handshake (RFC 7692 §5, §7.1): reading a client's offers and
//! writing the server's answer, and the client's side of the same for tests and benchmarks.
//!
//! The server always answers with `server_no_context_takeover` (allowed whatever the offer,
//! §7.1.1.1) and `client_no_context_takeover` (§7.1.1.2): each message is compressed and
//! decompressed on its own, so a connection keeps no DEFLATE state between messages and the
//! compressors can be shared per thread. Context takeover compresses a stream of similar
//! messages better, but costs each connection a window and zlib's hash tables (about 256 KiB
//! for a 32 KiB window), which a broker of many idle connections cannot afford.

use http::{HeaderMap, HeaderValue, header::SEC_WEBSOCKET_EXTENSIONS};

/// The extension's name in `Sec-WebSocket-Extensions`.
pub const PERMESSAGE_DEFLATE: &str = "permessage-deflate";

/// What a server is willing to do; see [`negotiate`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DeflateConfig {
    /// zlib's compression level, 0 (stored) to 9 (smallest, slowest).
    pub level: u32,
    /// Messages shorter than this many bytes are sent uncompressed: on a few hundred bytes
    /// DEFLATE saves less than a packet's headers and still costs a compressor pass (resetting
    /// zlib's 128 KiB hash table included). Default 256.
    pub min_size: usize,
    /// The largest LZ77 window used to compress, as base-2 logarithm (9 to 15); a client may
    /// ask for less with `server_max_window_bits`.
    pub max_window_bits: u8,
}

impl Default for DeflateConfig {
    fn default() -> Self {
        DeflateConfig {
            level: 1,
            min_size: 256,
            max_window_bits: 15,
        }
    }
}

/// What one connection agreed on: how its outgoing messages are compressed, and how its
/// incoming ones are decompressed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Deflate {
    /// See [`DeflateConfig::level`].
    pub level: u32,
    /// See [`DeflateConfig::min_size`].
    pub min_size: usize,
    /// The window our compressor uses (9 to 15).
    pub window_bits: u8,
    /// Whether the peer keeps its compression context between messages, so that our
    /// decompressor must keep its window too. Never, when we are the server; a client may
    /// have to, depending on the server.
    pub peer_takeover: bool,
}

/// The server's side: the first acceptable `permessage-deflate` offer among the request's
/// `Sec-WebSocket-Extensions` headers, and the header value that accepts it. None when the
/// client offered none we can accept (the connection then runs uncompressed, RFC 7692 §5).
///
/// An offer is refused when a parameter is unknown, repeated or malformed (§7), and when it
/// asks for `server_max_window_bits=8`: zlib cannot write a raw DEFLATE stream with a 256-byte
/// window (it uses 512 bytes instead), which such a client could not read.
pub fn negotiate(headers: &HeaderMap, config: &DeflateConfig) -> Option<(Deflate, HeaderValue)> {
    headers
        .get_all(SEC_WEBSOCKET_EXTENSIONS)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .find_map(|offer| accept(offer, config))
}

fn accept(offer: &str, config: &DeflateConfig) -> Option<(Deflate, HeaderValue)> {
    let params = Params::parse(offer)?;
    let mut window_bits = config.max_window_bits.clamp(9, 15);
    let mut answer =
        format!("{PERMESSAGE_DEFLATE}; server_no_context_takeover; client_no_context_takeover");
    if let Some(bits) = params.server_max_window_bits {
        if bits < 9 {
            return None;
        }
        window_bits = window_bits.min(bits);
        answer.push_str(&format!("; server_max_window_bits={window_bits}"));
    }
    let deflate = Deflate {
        level: config.level.min(9),
        min_size: config.min_size,
        window_bits,
        peer_takeover: false,
    };
    Some((deflate, HeaderValue::from_str(&answer).ok()?))
}

/// The offer a client sends: the plain extension, with `client_max_window_bits` to say it can
/// use a smaller window if asked (as browsers send it).
pub fn client_offer() -> HeaderValue {
    HeaderValue::from_static("permessage-deflate; client_max_window_bits")
}

/// The client's side: what the server's answer (its `Sec-WebSocket-Extensions` headers) agreed
/// to, for a client that sent [`client_offer`]. `Ok(None)` when the server declined; an error
/// when it answered something the offer did not allow (the client must then fail the
/// connection, §5). The client compresses without context takeover whatever the answer (it
/// may always do so).
pub fn client_accept(
    headers: &HeaderMap,
    config: &DeflateConfig,
) -> Result<Option<Deflate>, String> {
    let mut agreed = None;
    for value in headers.get_all(SEC_WEBSOCKET_EXTENSIONS) {
        let value = value
            .to_str()
            .map_err(|_| "Sec-WebSocket-Extensions is not text".to_owned())?;
        for answer in value.split(',') {
            let params = Params::parse(answer)
                .ok_or_else(|| format!("an extension we did not offer or can't use: {answer}"))?;
            if agreed.is_some() {
                return Err("permessage-deflate accepted twice".to_owned());
            }
            let window_bits = match params.client_max_window_bits {
                Some(Some(bits)) if bits < 9 => {
                    return Err(format!(
                        "client_max_window_bits={bits} is below what zlib writes"
                    ));
                }
                Some(Some(bits)) => bits.min(config.max_window_bits),
                _ => config.max_window_bits,
            };
            agreed = Some(Deflate {
                level: config.level.min(9),
                min_size: config.min_size,
                window_bits: window_bits.clamp(9, 15),
                peer_takeover: !params.server_no_context_takeover,
            });
        }
    }
    Ok(agreed)
}

/// The parameters of one `permessage-deflate` offer or answer.
#[derive(Debug, Default, PartialEq, Eq)]
struct Params {
    server_no_context_takeover: bool,
    client_no_context_takeover: bool,
    server_max_window_bits: Option<u8>,
    /// `Some(None)`: the parameter without a value (only in an offer).
    client_max_window_bits: Option<Option<u8>>,
}

impl Params {
    /// None when `text` is another extension, or a malformed `permessage-deflate`.
    fn parse(text: &str) -> Option<Params> {
        let mut parts = text.split(';').map(str::trim);
        if parts.next()? != PERMESSAGE_DEFLATE {
            return None;
        }
        let mut params = Params::default();
        for part in parts {
            let (name, value) = match part.split_once('=') {
                Some((name, value)) => (name.trim(), Some(unquote(value.trim())?)),
                None => (part, None),
            };
            match (name, value) {
                ("server_no_context_takeover", None) if !params.server_no_context_takeover => {
                    params.server_no_context_takeover = true;
                }
                ("client_no_context_takeover", None) if !params.client_no_context_takeover => {
                    params.client_no_context_takeover = true;
                }
                ("server_max_window_bits", Some(value))
                    if params.server_max_window_bits.is_none() =>
                {
                    params.server_max_window_bits = Some(window_bits(value)?);
                }
                ("client_max_window_bits", value) if params.client_max_window_bits.is_none() => {
                    params.client_max_window_bits = Some(match value {
                        Some(value) => Some(window_bits(value)?),
                        None => None,
                    });
                }
                _ => return None,
            }
        }
        Some(params)
    }
}

/// A value as a token or a quoted string (RFC 7692 §7.1.2.1 allows either for the window
/// sizes).
fn unquote(value: &str) -> Option<&str> {
    match value.strip_prefix('"') {
        Some(quoted) => quoted.strip_suffix('"'),
        None => Some(value),
    }
}

/// A window size: a decimal 8 to 15 without leading zeros (RFC 7692 §7.1.2.1).
fn window_bits(value: &str) -> Option<u8> {
    if value.starts_with('0') || !value.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let bits: u8 = value.parse().ok()?;
    (8..=15).contains(&bits).then_some(bits)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn offered(values: &[&str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for value in values {
            headers.append(
                SEC_WEBSOCKET_EXTENSIONS,
                HeaderValue::from_str(value).unwrap(),
            );
        }
        headers
    }

    fn answer(values: &[&str]) -> Option<(u8, String)> {
        negotiate(&offered(values), &DeflateConfig::default())
            .map(|(deflate, value)| (deflate.window_bits, value.to_str().unwrap().to_owned()))
    }

    const BOTH: &str = "permessage-deflate; server_no_context_takeover; client_no_context_takeover";

    #[test]
    fn browsers_offers_are_accepted_without_context_takeover() {
        // Chrome and Safari.
        let chrome = answer(&["permessage-deflate; client_max_window_bits"]);
        assert_eq!(chrome, Some((15, BOTH.to_owned())));
        // Firefox.
        assert_eq!(answer(&["permessage-deflate"]), Some((15, BOTH.to_owned())));
    }

    #[test]
    fn a_smaller_server_window_is_honoured_and_echoed() {
        let offer = "permessage-deflate; server_max_window_bits=10";
        let expected = format!("{BOTH}; server_max_window_bits=10");
        assert_eq!(answer(&[offer]), Some((10, expected)));
        let quoted = "permessage-deflate; server_max_window_bits=\"12\"";
        assert_eq!(answer(&[quoted]).unwrap().0, 12);
    }

    #[test]
    fn the_first_acceptable_offer_wins() {
        // Eight bits is refused (zlib cannot write it), the fallback offer is taken.
        let offers = [
            "x-webkit-deflate-frame",
            "permessage-deflate; server_max_window_bits=8, permessage-deflate",
        ];
        assert_eq!(answer(&offers), Some((15, BOTH.to_owned())));
    }

    #[test]
    fn malformed_offers_are_declined() {
        for offer in [
            "permessage-deflate; server_max_window_bits",
            "permessage-deflate; server_max_window_bits=16",
            "permessage-deflate; server_max_window_bits=010",
            "permessage-deflate; client_max_window_bits=7",
            "permessage-deflate; server_no_context_takeover; server_no_context_takeover",
            "permessage-deflate; server_no_context_takeover=1",
            "permessage-deflate; mystery",
            "permessage-deflate; server_max_window_bits=\"10",
            "deflate-stream",
        ] {
            assert_eq!(answer(&[offer]), None, "{offer}");
        }
        assert_eq!(answer(&[]), None);
    }

    #[test]
    fn a_configured_window_caps_the_clients() {
        let config = DeflateConfig {
            max_window_bits: 11,
            ..DeflateConfig::default()
        };
        let headers = offered(&["permessage-deflate; server_max_window_bits=13"]);
        let (deflate, value) = negotiate(&headers, &config).unwrap();
        assert_eq!(deflate.window_bits, 11);
        assert!(
            value
                .to_str()
                .unwrap()
                .ends_with("server_max_window_bits=11")
        );
    }

    #[test]
    fn a_client_reads_the_servers_answer() {
        let config = DeflateConfig::default();
        let agreed = client_accept(&offered(&[BOTH]), &config).unwrap().unwrap();
        assert!(!agreed.peer_takeover);
        let takeover = client_accept(&offered(&["permessage-deflate"]), &config);
        assert!(takeover.unwrap().unwrap().peer_takeover);
        let small = offered(&["permessage-deflate; client_max_window_bits=10"]);
        assert_eq!(
            client_accept(&small, &config).unwrap().unwrap().window_bits,
            10
        );
        assert_eq!(client_accept(&HeaderMap::new(), &config), Ok(None));
        assert!(client_accept(&offered(&["permessage-deflate; mystery"]), &config).is_err());
        assert!(
            client_accept(
                &offered(&["permessage-deflate, permessage-deflate"]),
                &config
            )
            .is_err()
        );
    }
}
