//! The outbound policy: which addresses the server may call on someone
//! else's behalf. Every URL the server will call (tasks, endpoints, alert
//! hooks, routes, re-send overrides) passes it twice: at submission, where
//! a literal address is checked and a refusal is a 400, and at connect
//! time, on every address a host name resolves to, so that a name that
//! later resolves elsewhere (DNS rebinding) is refused all the same.
//!
//! Pure rules on addresses: no DNS, no I/O.

use crate::TargetUrl;
use ipnet::IpNet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Which addresses may be called.
#[derive(Debug, Clone)]
pub struct OutboundPolicy {
    /// 10/8, 172.16/12, 192.168/16, 100.64/10, fc00::/7. Allowed by
    /// default: a company's internal services are the usual receivers.
    pub allow_private: bool,
    /// 127/8 and ::1.
    pub allow_loopback: bool,
    /// Allowed whatever else says, even the always-refused ranges.
    pub allow_cidrs: Vec<IpNet>,
    /// Refused unless in `allow_cidrs`.
    pub deny_cidrs: Vec<IpNet>,
}

impl Default for OutboundPolicy {
    fn default() -> Self {
        Self {
            allow_private: true,
            allow_loopback: true,
            allow_cidrs: Vec::new(),
            deny_cidrs: Vec::new(),
        }
    }
}

/// Why an address was refused, naming the rule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{address} is refused by the outbound policy: {rule}")]
pub struct Refused {
    pub address: IpAddr,
    pub rule: &'static str,
}

impl OutboundPolicy {
    /// Whether `address` may be called. An IPv4-mapped IPv6 address
    /// (`::ffff:169.254.169.254`) is judged as the IPv4 address it is.
    pub fn check_ip(&self, address: IpAddr) -> Result<(), Refused> {
        let ip = canonical(address);
        let refuse = |rule| Err(Refused { address, rule });
        if self.allow_cidrs.iter().any(|net| net.contains(&ip)) {
            return Ok(());
        }
        if self.deny_cidrs.iter().any(|net| net.contains(&ip)) {
            return refuse("outbound.deny_cidrs");
        }
        if let Some(rule) = always_refused(ip) {
            return refuse(rule);
        }
        if ip.is_loopback() && !self.allow_loopback {
            return refuse("loopback (outbound.allow_loopback = false)");
        }
        if is_private(ip) && !self.allow_private {
            return refuse("private range (outbound.allow_private = false)");
        }
        Ok(())
    }

    /// The check at submission: a URL whose host is a literal address is
    /// judged now; a host name is judged on what it resolves to, at
    /// connect time.
    pub fn check_url(&self, url: &TargetUrl) -> Result<(), Refused> {
        self.check_literal(url.as_url())
    }

    /// Judges the address `url` names literally, if it names one. The
    /// sender calls this before each call too: a literal address never
    /// reaches the resolver that judges host names at connect time.
    pub fn check_literal(&self, url: &url::Url) -> Result<(), Refused> {
        match url.host() {
            Some(url::Host::Ipv4(ip)) => self.check_ip(IpAddr::V4(ip)),
            Some(url::Host::Ipv6(ip)) => self.check_ip(IpAddr::V6(ip)),
            Some(url::Host::Domain(_)) | None => Ok(()),
        }
    }
}

/// An IPv4-mapped IPv6 address as the IPv4 address it is, so that one
/// rule covers both spellings.
pub fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 => v4,
    }
}

/// Ranges no receiver lives in: link-local (cloud metadata lives at
/// 169.254.169.254), "this network", multicast, broadcast, unspecified.
fn always_refused(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => {
            if v4.is_link_local() {
                Some("link-local / cloud metadata (169.254.0.0/16)")
            } else if v4.octets()[0] == 0 {
                Some("\"this network\" (0.0.0.0/8)")
            } else if v4.is_multicast() {
                Some("multicast (224.0.0.0/4)")
            } else if v4 == Ipv4Addr::BROADCAST {
                Some("broadcast (255.255.255.255)")
            } else {
                None
            }
        }
        IpAddr::V6(v6) => {
            if (v6.segments()[0] & 0xffc0) == 0xfe80 {
                Some("link-local (fe80::/10)")
            } else if v6.is_multicast() {
                Some("multicast (ff00::/8)")
            } else if v6 == Ipv6Addr::UNSPECIFIED {
                Some("unspecified (::)")
            } else {
                None
            }
        }
    }
}

fn is_private(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            v4.is_private() || (a == 100 && (64..128).contains(&b))
        }
        IpAddr::V6(v6) => (v6.segments()[0] & 0xfe00) == 0xfc00,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("an address")
    }

    fn url(s: &str) -> TargetUrl {
        TargetUrl::parse(s).expect("a URL")
    }

    #[test]
    fn cloud_metadata_is_refused_in_every_spelling() {
        let policy = OutboundPolicy::default();
        for address in [
            "169.254.169.254",
            "::ffff:169.254.169.254",
            "fe80::1",
            "0.0.0.0",
        ] {
            let refused = policy.check_ip(ip(address)).expect_err(address);
            assert_eq!(refused.address, ip(address));
        }
        for raw in [
            "http://169.254.169.254/latest/meta-data",
            "http://[::ffff:169.254.169.254]/latest/meta-data",
            "http://[::ffff:a9fe:a9fe]/",
        ] {
            assert!(policy.check_url(&url(raw)).is_err(), "{raw}");
        }
    }

    #[test]
    fn internal_receivers_are_allowed_by_default_and_refused_when_asked() {
        let default = OutboundPolicy::default();
        for address in [
            "127.0.0.1",
            "::1",
            "10.1.2.3",
            "192.168.1.7",
            "fd00::1",
            "8.8.8.8",
        ] {
            assert_eq!(default.check_ip(ip(address)), Ok(()), "{address}");
        }
        let strict = OutboundPolicy {
            allow_private: false,
            allow_loopback: false,
            ..OutboundPolicy::default()
        };
        for address in [
            "127.0.0.1",
            "::1",
            "10.1.2.3",
            "172.16.0.1",
            "100.64.0.1",
            "fd00::1",
        ] {
            assert!(strict.check_ip(ip(address)).is_err(), "{address}");
        }
        assert_eq!(strict.check_ip(ip("8.8.8.8")), Ok(()));
        let refused = strict
            .check_ip(ip("::ffff:127.0.0.1"))
            .expect_err("mapped loopback");
        assert!(refused.rule.contains("loopback"), "{}", refused.rule);
    }

    #[test]
    fn listed_ranges_come_before_the_built_in_rules() {
        let policy = OutboundPolicy {
            allow_cidrs: vec!["169.254.10.0/24".parse().expect("cidr")],
            deny_cidrs: vec!["10.9.0.0/16".parse().expect("cidr")],
            ..OutboundPolicy::default()
        };
        assert_eq!(policy.check_ip(ip("169.254.10.5")), Ok(()));
        assert!(policy.check_ip(ip("169.254.169.254")).is_err());
        let refused = policy.check_ip(ip("10.9.1.1")).expect_err("denied");
        assert_eq!(refused.rule, "outbound.deny_cidrs");
        assert_eq!(policy.check_ip(ip("10.8.1.1")), Ok(()));
    }

    #[test]
    fn host_names_wait_for_connect_time() {
        let policy = OutboundPolicy {
            allow_loopback: false,
            ..OutboundPolicy::default()
        };
        assert_eq!(policy.check_url(&url("http://localhost:8080/x")), Ok(()));
        assert!(policy.check_url(&url("http://127.0.0.1:8080/x")).is_err());
    }
}
