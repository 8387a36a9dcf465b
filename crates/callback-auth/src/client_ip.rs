//! Which address a request came from, when proxies stand in between.

use ipnet::IpNet;
use std::net::IpAddr;

/// The client's address: the peer itself, unless the peer is a trusted
/// proxy; then the right-most `X-Forwarded-For` entry that is not a
/// trusted proxy (entries left of it could be written by anyone).
/// `X-Forwarded-For` from an untrusted peer is ignored: a client could
/// claim any address in it.
pub fn client_ip(
    peer: Option<IpAddr>,
    forwarded_for: Option<&str>,
    trusted_proxies: &[IpNet],
) -> Option<IpAddr> {
    let trusted = |ip: &IpAddr| {
        let ip = callback_core::outbound::canonical(*ip);
        trusted_proxies.iter().any(|net| net.contains(&ip))
    };
    let peer = peer?;
    if !trusted(&peer) {
        return Some(peer);
    }
    let Some(header) = forwarded_for else {
        return Some(peer);
    };
    let mut hops = Vec::new();
    for entry in header.split(',') {
        match entry.trim().parse::<IpAddr>() {
            Ok(ip) => hops.push(ip),
            // A hop we cannot read: no address left of it can be trusted.
            Err(_) => return Some(peer),
        }
    }
    Some(
        hops.iter()
            .rev()
            .find(|ip| !trusted(ip))
            .or(hops.first())
            .copied()
            .unwrap_or(peer),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn forwarded_for_counts_only_from_trusted_proxies() {
        let trusted: Vec<IpNet> = vec!["10.0.0.0/8".parse().unwrap()];
        // A direct client cannot claim an address.
        assert_eq!(
            client_ip(Some(ip("203.0.113.9")), Some("10.1.1.1"), &trusted),
            Some(ip("203.0.113.9"))
        );
        // Through one trusted proxy.
        assert_eq!(
            client_ip(Some(ip("10.0.0.2")), Some("198.51.100.7"), &trusted),
            Some(ip("198.51.100.7"))
        );
        // The client spoofed an entry; the proxies appended the real one.
        assert_eq!(
            client_ip(
                Some(ip("10.0.0.2")),
                Some("1.2.3.4, 198.51.100.7, 10.0.0.3"),
                &trusted
            ),
            Some(ip("198.51.100.7"))
        );
        // A trusted proxy without the header, or with garbage in it.
        assert_eq!(
            client_ip(Some(ip("10.0.0.2")), None, &trusted),
            Some(ip("10.0.0.2"))
        );
        assert_eq!(
            client_ip(Some(ip("10.0.0.2")), Some("nonsense"), &trusted),
            Some(ip("10.0.0.2"))
        );
        assert_eq!(client_ip(None, Some("1.2.3.4"), &trusted), None);
    }
}
