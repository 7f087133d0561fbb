//! The client's address behind a reverse proxy (`websocket.trusted_proxies`): a proxy the
//! operator trusts reports it in `X-Forwarded-For`, so the failed-login guard, the connection
//! limits, the loopback default, logs and the authenticator see the client, not the proxy.
//! Only proxies on the list are believed: anyone else could write the header.

use std::net::{IpAddr, SocketAddr};

use axum::http::HeaderMap;
use ipnet::IpNet;

/// A list of addresses and networks (`10.0.0.5`, `10.0.0.0/8`, `fd00::/8`).
#[derive(Clone, Debug, Default)]
pub(crate) struct Networks(Vec<IpNet>);

impl Networks {
    /// `Err(entry)` names the first entry that is neither an address nor a network.
    pub(crate) fn parse(entries: &[String]) -> Result<Self, String> {
        let parse = |e: &String| {
            (e.parse::<IpNet>())
                .or_else(|_| e.parse::<IpAddr>().map(IpNet::from))
                .map_err(|_| e.clone())
        };
        entries
            .iter()
            .map(parse)
            .collect::<Result<_, _>>()
            .map(Networks)
    }

    /// True if `ip` (an IPv4-mapped IPv6 address as its IPv4 one) is in one of them.
    pub(crate) fn contains(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.0.iter().any(|net| net.contains(&ip))
    }

    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// The proxies whose `X-Forwarded-For` is believed.
#[derive(Clone, Debug, Default)]
pub(crate) struct TrustedProxies(Networks);

impl TrustedProxies {
    /// From `websocket.trusted_proxies` entries (see [`Networks::parse`]).
    pub(crate) fn parse(entries: &[String]) -> Result<Self, String> {
        Networks::parse(entries).map(TrustedProxies)
    }

    fn trusts(&self, ip: IpAddr) -> bool {
        self.0.contains(ip)
    }

    /// The client's address: `peer` itself unless `peer` is a trusted proxy, in which case the
    /// right-most address of `X-Forwarded-For` that is not a trusted proxy (each proxy appends
    /// the address it received the request from, so addresses left of an untrusted one may be
    /// forged). The port is unknown then and given as 0.
    pub(crate) fn client(&self, peer: SocketAddr, headers: &HeaderMap) -> SocketAddr {
        if self.0.is_empty() || !self.trusts(peer.ip()) {
            return peer;
        }
        let mut hops = Vec::new();
        for value in headers.get_all("x-forwarded-for") {
            let Ok(text) = value.to_str() else {
                return peer;
            };
            hops.extend(text.split(',').map(str::trim));
        }
        for hop in hops.iter().rev() {
            let Ok(ip) = hop.parse::<IpAddr>() else {
                // Garbage from a proxy we trust: believe nothing more than the proxy itself.
                return peer;
            };
            if !self.trusts(ip) {
                return SocketAddr::new(ip, 0);
            }
        }
        peer
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(trusted: &[&str], peer: &str, xff: &[&str]) -> String {
        let list: Vec<String> = trusted.iter().map(|s| s.to_string()).collect();
        let proxies = TrustedProxies::parse(&list).unwrap();
        let mut headers = HeaderMap::new();
        for v in xff {
            headers.append("x-forwarded-for", v.parse().unwrap());
        }
        proxies
            .client(peer.parse().unwrap(), &headers)
            .ip()
            .to_string()
    }

    #[test]
    fn only_trusted_proxies_are_believed() {
        let trusted = ["127.0.0.1", "10.0.0.0/8"];
        assert_eq!(
            client(&trusted, "127.0.0.1:5000", &["203.0.113.9"]),
            "203.0.113.9"
        );
        assert_eq!(
            client(&trusted, "192.0.2.1:5000", &["203.0.113.9"]),
            "192.0.2.1"
        );
        // A chain of proxies: the right-most untrusted hop; a forged left part is ignored.
        assert_eq!(
            client(
                &trusted,
                "127.0.0.1:5000",
                &["1.1.1.1, 203.0.113.9", "10.1.2.3"]
            ),
            "203.0.113.9"
        );
        assert_eq!(client(&trusted, "127.0.0.1:5000", &[]), "127.0.0.1");
        assert_eq!(
            client(&trusted, "127.0.0.1:5000", &["not-an-ip"]),
            "127.0.0.1"
        );
        assert_eq!(client(&[], "127.0.0.1:5000", &["203.0.113.9"]), "127.0.0.1");
        assert_eq!(
            client(&trusted, "127.0.0.1:1", &["2001:db8::1"]),
            "2001:db8::1"
        );
        assert!(TrustedProxies::parse(&["10.0.0.0/33".into()]).is_err());
    }
}
