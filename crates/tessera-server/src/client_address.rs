//! The client's address when Tessera runs behind reverse proxies.
//!
//! Behind a proxy every connection comes from the proxy's address, so that
//! anything keyed on the socket address (login and device-code throttles,
//! rate limits) would put all users in one bucket: a few wrong passwords
//! would lock everyone out. The proxies an operator lists in
//! `trusted_proxies` are believed about who they forward for; nobody else
//! is, since anyone can send a forwarding header.
//!
//! Layer-4 load balancers (HAProxy in TCP mode, AWS NLB) instead open each
//! connection with a PROXY protocol header (`proxy_protocol`); the address in
//! it is the client's, read by the connection loop with the `proxy-header`
//! crate.
//!
//! The address is the right-most hop that is not a trusted proxy: each proxy
//! appends the address it received the request from, so everything left of
//! the first untrusted hop (reading from the right) was written by the
//! client and may be forged.

use std::net::IpAddr;
use std::str::FromStr;

use axum::http::HeaderMap;
use forwarded_header_value::ForwardedHeaderValue;
use ipnet::IpNet;

/// Which header the trusted proxies write the client's address into.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ForwardedHeader {
    /// `X-Forwarded-For`, as nginx, HAProxy, Traefik and the cloud load
    /// balancers send it.
    #[default]
    XForwardedFor,
    /// `Forwarded` (RFC 7239), its `for=` parameters.
    Forwarded,
}

impl FromStr for ForwardedHeader {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "x-forwarded-for" => Ok(ForwardedHeader::XForwardedFor),
            "forwarded" => Ok(ForwardedHeader::Forwarded),
            other => Err(format!(
                "{other:?}: expected \"x-forwarded-for\" or \"forwarded\""
            )),
        }
    }
}

/// The proxies whose forwarding header is believed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies {
    networks: Vec<IpNet>,
    /// Only the one header the proxies write is read: a proxy that sets
    /// `X-Forwarded-For` may pass a client's own `Forwarded` through
    /// untouched, and reading both would let the client choose.
    header: ForwardedHeader,
    /// The proxies speak the PROXY protocol: the connection names the client,
    /// and the headers, which a layer-4 proxy passes through as the client
    /// wrote them, are not read.
    proxy_protocol: bool,
}

impl TrustedProxies {
    pub fn new(networks: Vec<IpNet>, header: ForwardedHeader) -> Self {
        TrustedProxies {
            networks,
            header,
            proxy_protocol: false,
        }
    }

    /// The same proxies, opening their connections with a PROXY protocol
    /// header when `on`.
    pub fn with_proxy_protocol(self, on: bool) -> Self {
        TrustedProxies {
            proxy_protocol: on,
            ..self
        }
    }

    /// Whether a connection from `peer` must begin with a PROXY protocol
    /// header: only a trusted proxy's, when they speak it.
    pub fn expects_proxy_header(&self, peer: IpAddr) -> bool {
        self.proxy_protocol && self.trusts(peer.to_canonical())
    }

    /// Parses a list of CIDR blocks or single addresses.
    pub fn parse_networks<'a>(
        items: impl IntoIterator<Item = &'a str>,
    ) -> Result<Vec<IpNet>, String> {
        items
            .into_iter()
            .map(str::trim)
            .filter(|item| !item.is_empty())
            .map(|item| {
                item.parse::<IpNet>()
                    .or_else(|_| item.parse::<IpAddr>().map(IpNet::from))
                    .map_err(|_| format!("{item:?} is neither an address nor a CIDR block"))
            })
            .collect()
    }

    pub fn is_empty(&self) -> bool {
        self.networks.is_empty()
    }

    fn trusts(&self, address: IpAddr) -> bool {
        self.networks.iter().any(|net| net.contains(&address))
    }

    /// The client's address for a request that came from `peer`.
    pub fn resolve(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        let peer = peer.to_canonical();
        if !self.trusts(peer) {
            return peer;
        }
        let mut client = peer;
        let mut walk = |hop: Option<IpAddr>| -> bool {
            match hop {
                Some(hop) => {
                    client = hop.to_canonical();
                    // Go on left only past a trusted proxy.
                    self.trusts(client)
                }
                // A hop that names no address (`unknown`, an obfuscated
                // name, garbage): nothing left of it can be placed, so the
                // last trusted proxy stands for the client.
                None => false,
            }
        };
        match self.header {
            ForwardedHeader::XForwardedFor => {
                // Repeated header lines read as one list, in order.
                'lines: for line in headers.get_all("x-forwarded-for").iter().rev() {
                    let Ok(line) = line.to_str() else {
                        walk(None);
                        break;
                    };
                    for hop in line.rsplit(',') {
                        if !walk(hop.trim().parse().ok()) {
                            break 'lines;
                        }
                    }
                }
            }
            ForwardedHeader::Forwarded => {
                'lines: for line in headers.get_all("forwarded").iter().rev() {
                    let parsed = line
                        .to_str()
                        .ok()
                        .and_then(|line| ForwardedHeaderValue::from_forwarded(line).ok());
                    let Some(parsed) = parsed else {
                        walk(None);
                        break;
                    };
                    let hops: Vec<Option<IpAddr>> = parsed
                        .iter()
                        .map(|stanza| stanza.forwarded_for_ip())
                        .collect();
                    for hop in hops.into_iter().rev() {
                        if !walk(hop) {
                            break 'lines;
                        }
                    }
                }
            }
        }
        client
    }
}

/// The resolved address, put on each request by the connection loop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResolvedAddress(pub IpAddr);

/// A request's client address: the resolved one behind trusted proxies, else
/// the socket's peer. `None` only for a request that came through no socket
/// (a router driven in-process).
pub fn of_request(extensions: &axum::http::Extensions) -> Option<IpAddr> {
    extensions
        .get::<ResolvedAddress>()
        .map(|resolved| resolved.0)
        .or_else(|| {
            extensions
                .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
                .map(|info| info.0.ip())
        })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn proxies(networks: &[&str], header: ForwardedHeader) -> TrustedProxies {
        TrustedProxies::new(
            TrustedProxies::parse_networks(networks.iter().copied()).unwrap(),
            header,
        )
    }

    fn headers(name: &'static str, lines: &[&str]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for line in lines {
            map.append(name, HeaderValue::from_str(line).unwrap());
        }
        map
    }

    #[test]
    fn an_untrusted_peer_is_the_client_whatever_it_claims() {
        let none = TrustedProxies::default();
        let claims = headers("x-forwarded-for", &["203.0.113.9"]);
        assert_eq!(none.resolve(ip("192.0.2.1"), &claims), ip("192.0.2.1"));
        let some = proxies(&["10.0.0.0/8"], ForwardedHeader::XForwardedFor);
        assert_eq!(some.resolve(ip("192.0.2.1"), &claims), ip("192.0.2.1"));
    }

    #[test]
    fn the_right_most_untrusted_hop_is_the_client() {
        let trusted = proxies(
            &["10.0.0.0/8", "192.0.2.10"],
            ForwardedHeader::XForwardedFor,
        );
        // The client forged the first entry; the edge proxy (192.0.2.10)
        // appended the real one, the inner proxy (10.1.1.1) the edge's.
        let forwarded = headers("x-forwarded-for", &["1.2.3.4, 198.51.100.7", "192.0.2.10"]);
        assert_eq!(
            trusted.resolve(ip("10.1.1.1"), &forwarded),
            ip("198.51.100.7")
        );
        // Without a header the proxy is the client.
        assert_eq!(
            trusted.resolve(ip("10.1.1.1"), &HeaderMap::new()),
            ip("10.1.1.1")
        );
        // Every hop trusted: the left-most.
        let inside = headers("x-forwarded-for", &["10.2.2.2, 10.3.3.3"]);
        assert_eq!(trusted.resolve(ip("10.1.1.1"), &inside), ip("10.2.2.2"));
    }

    #[test]
    fn a_hop_without_an_address_stops_the_walk_at_the_last_proxy() {
        let trusted = proxies(&["10.0.0.0/8"], ForwardedHeader::XForwardedFor);
        let garbled = headers("x-forwarded-for", &["198.51.100.7, not-an-ip, 10.2.2.2"]);
        assert_eq!(trusted.resolve(ip("10.1.1.1"), &garbled), ip("10.2.2.2"));
    }

    #[test]
    fn the_forwarded_header_is_read_only_when_configured() {
        let trusted = proxies(&["127.0.0.1/32"], ForwardedHeader::Forwarded);
        let both = {
            let mut map = headers(
                "forwarded",
                &["for=192.0.2.60;proto=http, for=\"[2001:db8:cafe::17]:4711\""],
            );
            map.append("x-forwarded-for", HeaderValue::from_static("203.0.113.1"));
            map
        };
        assert_eq!(
            trusted.resolve(ip("127.0.0.1"), &both),
            ip("2001:db8:cafe::17")
        );
        let xff = proxies(&["127.0.0.1/32"], ForwardedHeader::XForwardedFor);
        assert_eq!(xff.resolve(ip("127.0.0.1"), &both), ip("203.0.113.1"));
        let unknown = headers("forwarded", &["for=unknown"]);
        assert_eq!(trusted.resolve(ip("127.0.0.1"), &unknown), ip("127.0.0.1"));
    }

    #[test]
    fn ipv4_mapped_addresses_match_ipv4_blocks() {
        let trusted = proxies(&["127.0.0.1"], ForwardedHeader::XForwardedFor);
        let forwarded = headers("x-forwarded-for", &["::ffff:198.51.100.7"]);
        assert_eq!(
            trusted.resolve(ip("::ffff:127.0.0.1"), &forwarded),
            ip("198.51.100.7")
        );
    }

    #[test]
    fn networks_parse_as_blocks_or_addresses() {
        assert!(TrustedProxies::parse_networks(["10.0.0.0/8", " ::1 ", ""]).is_ok());
        assert!(TrustedProxies::parse_networks(["10.0.0.0/33"]).is_err());
        assert!(TrustedProxies::parse_networks(["proxy.internal"]).is_err());
        assert!("Forwarded".parse::<ForwardedHeader>().is_ok());
        assert!("x-real-ip".parse::<ForwardedHeader>().is_err());
    }
}
