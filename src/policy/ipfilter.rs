//! `IpFilter` policies and the client address they judge.

use crate::config::{ConfigError, ConfigErrors, IpFilterConf};
use ipnet::IpNet;
use std::net::IpAddr;

#[derive(Debug, Clone)]
pub struct IpFilter {
    allow: bool,
    nets: Vec<IpNet>,
}

impl IpFilter {
    pub fn compile(
        file: &str,
        field: &str,
        conf: &IpFilterConf,
        errors: &mut ConfigErrors,
    ) -> Option<IpFilter> {
        let allow = match conf.action.as_str() {
            "allow" => true,
            "forbid" => false,
            other => {
                errors.push(ConfigError::new(
                    file,
                    format!("{field}.Action"),
                    format!("unknown action {other:?}"),
                    "use \"allow\" or \"forbid\"",
                ));
                return None;
            }
        };
        let nets = parse_nets(file, &format!("{field}.Addresses"), &conf.addresses, errors)?;
        Some(IpFilter { allow, nets })
    }

    /// Whether `ip` may pass. An unknown client (`UNKNOWN_CLIENT`, or any unspecified
    /// address) passes no filter, allow or forbid alike: a forbid list cannot name a client
    /// whose address could not be read, so admitting it would let any client that garbles
    /// its forwarding chain past every forbid list (fail closed).
    pub fn permits(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        if ip.is_unspecified() {
            return false;
        }
        let listed = self.nets.iter().any(|n| n.contains(&ip));
        listed == self.allow
    }
}

/// Parses addresses and CIDRs; a bare address is a /32 or /128.
pub fn parse_nets(
    file: &str,
    field: &str,
    items: &[String],
    errors: &mut ConfigErrors,
) -> Option<Vec<IpNet>> {
    let mut nets = Vec::with_capacity(items.len());
    let mut ok = true;
    for item in items {
        match item
            .parse::<IpNet>()
            .or_else(|_| item.parse::<IpAddr>().map(IpNet::from))
        {
            Ok(n) => nets.push(n),
            Err(_) => {
                ok = false;
                errors.push(ConfigError::new(
                    file,
                    field,
                    format!("{item:?} is not an IP address or CIDR"),
                    "write addresses like \"192.0.2.7\" or ranges like \"10.0.0.0/8\"",
                ));
            }
        }
    }
    ok.then_some(nets)
}

/// Whether `peer` is one of `TrustedProxies` (whose forwarding headers are believed).
pub fn is_trusted(peer: IpAddr, trusted: &[IpNet]) -> bool {
    !trusted.is_empty() && contains(trusted, peer)
}

fn contains(nets: &[IpNet], ip: IpAddr) -> bool {
    let ip = canonical(ip);
    nets.iter().any(|n| n.contains(&ip))
}

/// IPv4-mapped IPv6 (`::ffff:1.2.3.4`) is judged as the IPv4 address.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
        v4 => v4,
    }
}

/// The address of a client that cannot be known (an unreadable forwarding chain, a peer
/// without an IP address). No IP filter admits it (see `IpFilter::permits`).
pub const UNKNOWN_CLIENT: IpAddr = IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED);

/// The client address: the TCP peer, unless the peer is a trusted proxy, in which case the
/// right-most address of `X-Forwarded-For` that is not itself trusted. A client that is not
/// a trusted proxy cannot move its address through headers. An entry that is not an
/// address gives `UNKNOWN_CLIENT`, never the trusted proxy's own address (fail closed).
pub fn client_ip<'a>(
    peer: IpAddr,
    trusted: &[IpNet],
    xff: impl DoubleEndedIterator<Item = &'a [u8]>,
) -> IpAddr {
    if !is_trusted(peer, trusted) {
        return canonical(peer);
    }
    let mut candidate = canonical(peer);
    for value in xff.rev() {
        let Ok(value) = std::str::from_utf8(value) else {
            return UNKNOWN_CLIENT;
        };
        for item in value.rsplit(',') {
            let Some(ip) = parse_hop(item) else {
                return UNKNOWN_CLIENT;
            };
            if !contains(trusted, ip) {
                return ip;
            }
            candidate = ip;
        }
    }
    candidate
}

/// One `X-Forwarded-For` entry: `192.0.2.1`, `2001:db8::1`, and the forms some load
/// balancers write, `192.0.2.1:4711` and `[2001:db8::1]:443`.
fn parse_hop(item: &str) -> Option<IpAddr> {
    let item = item.trim().trim_matches('"');
    if let Ok(ip) = item.parse::<IpAddr>() {
        return Some(canonical(ip));
    }
    let (host, port) = match item.strip_prefix('[') {
        Some(v6) => {
            let (host, rest) = v6.split_once(']')?;
            (
                host,
                rest.strip_prefix(':').or(rest.is_empty().then_some("0"))?,
            )
        }
        None => item.split_once(':')?,
    };
    port.parse::<u16>().ok()?;
    host.parse::<IpAddr>().ok().map(canonical)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filter(action: &str, addrs: &[&str]) -> IpFilter {
        let conf = IpFilterConf {
            action: action.into(),
            addresses: addrs.iter().map(|s| s.to_string()).collect(),
        };
        IpFilter::compile(
            "f",
            "Policies.IpFilter",
            &conf,
            &mut ConfigErrors::default(),
        )
        .unwrap()
    }

    #[test]
    fn allow_and_forbid() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert!(!filter("forbid", &["127.0.0.0/8"]).permits(ip("127.0.0.1")));
        assert!(filter("forbid", &["10.0.0.0/8"]).permits(ip("127.0.0.1")));
        assert!(filter("allow", &["127.0.0.1"]).permits(ip("127.0.0.1")));
        assert!(!filter("allow", &["10.0.0.0/8"]).permits(ip("127.0.0.1")));
        assert!(filter("allow", &["127.0.0.1"]).permits(ip("::ffff:127.0.0.1")));
        assert!(!filter("allow", &["2001:db8::/32"]).permits(ip("::1")));
    }

    #[test]
    fn unknown_clients_pass_no_filter() {
        for f in [
            filter("forbid", &["192.0.2.0/24"]),
            filter("forbid", &[]),
            filter("allow", &["0.0.0.0/0", "::/0"]),
            filter("allow", &["0.0.0.0"]),
        ] {
            assert!(!f.permits(UNKNOWN_CLIENT), "{f:?}");
            assert!(!f.permits("::".parse().unwrap()), "{f:?}");
            assert!(!f.permits("::ffff:0.0.0.0".parse().unwrap()), "{f:?}");
        }
        // A known client still passes a forbid list that does not name it.
        assert!(filter("forbid", &["192.0.2.0/24"]).permits("198.51.100.1".parse().unwrap()));
    }

    #[test]
    fn bad_config_is_reported() {
        let mut errors = ConfigErrors::default();
        let conf = IpFilterConf {
            action: "deny".into(),
            addresses: vec![],
        };
        assert!(IpFilter::compile("f", "P", &conf, &mut errors).is_none());
        let conf = IpFilterConf {
            action: "allow".into(),
            addresses: vec!["10.0.0.0/33".into(), "nope".into()],
        };
        assert!(IpFilter::compile("f", "P", &conf, &mut errors).is_none());
        assert_eq!(errors.0.len(), 3);
    }

    #[test]
    fn forwarded_for_only_believed_from_trusted_peers() {
        let trusted: Vec<IpNet> = vec!["10.0.0.0/8".parse().unwrap()];
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let xff: Vec<&[u8]> = vec![b"1.1.1.1, 2.2.2.2", b"10.0.0.5"];
        // Untrusted peer: headers ignored.
        assert_eq!(
            client_ip(ip("192.0.2.1"), &trusted, xff.iter().copied()),
            ip("192.0.2.1")
        );
        // Trusted peer: right-most untrusted entry.
        assert_eq!(
            client_ip(ip("10.0.0.1"), &trusted, xff.iter().copied()),
            ip("2.2.2.2")
        );
        // All trusted: the left-most one.
        let all: Vec<&[u8]> = vec![b"10.1.1.1"];
        assert_eq!(
            client_ip(ip("10.0.0.1"), &trusted, all.iter().copied()),
            ip("10.1.1.1")
        );
        // Garbage is an unknown client, never the trusted proxy itself.
        for bad in [&b"1.1.1.1, junk"[..], b"", b"1.1.1.1:x:y", b"[::1", &[0xff]] {
            assert_eq!(
                client_ip(ip("10.0.0.1"), &trusted, [bad].into_iter()),
                UNKNOWN_CLIENT,
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        // Entries with ports, as some load balancers write them.
        for (entry, want) in [
            (&b"198.51.100.7:5555"[..], "198.51.100.7"),
            (b"[2001:db8::7]:443", "2001:db8::7"),
            (b"[2001:db8::8]", "2001:db8::8"),
            (b"\"198.51.100.9\"", "198.51.100.9"),
            (b"::ffff:198.51.100.10", "198.51.100.10"),
        ] {
            assert_eq!(
                client_ip(ip("10.0.0.1"), &trusted, [entry].into_iter()),
                ip(want)
            );
        }
        // A trusted hop with a port is skipped like any trusted hop.
        let chain: Vec<&[u8]> = vec![b"203.0.113.1, 10.2.2.2:80"];
        assert_eq!(
            client_ip(ip("10.0.0.1"), &trusted, chain.iter().copied()),
            ip("203.0.113.1")
        );
        // No trusted proxies configured.
        assert_eq!(
            client_ip(ip("10.0.0.1"), &[], xff.iter().copied()),
            ip("10.0.0.1")
        );
    }

    proptest::proptest! {
        /// Any `X-Forwarded-For` bytes: no panic; from an untrusted peer the peer is the
        /// client; from a trusted one the client is unknown, untrusted, or (all hops
        /// trusted) a trusted hop, never an address the filters would mistake for another.
        #[test]
        fn forwarded_for_is_total(
            lines in proptest::collection::vec(
                proptest::collection::vec(proptest::prelude::any::<u8>(), 0..24), 0..3),
            hops in proptest::collection::vec("(10\\.0\\.0\\.[0-9]|198\\.51\\.100\\.[0-9]|\\[::1\\]:80|junk|)", 0..4),
        ) {
            let trusted: Vec<IpNet> = vec!["10.0.0.0/8".parse().unwrap()];
            let joined = hops.join(",");
            let mut all: Vec<&[u8]> = lines.iter().map(|l| l.as_slice()).collect();
            all.push(joined.as_bytes());
            let outside: IpAddr = "192.0.2.1".parse().unwrap();
            proptest::prop_assert_eq!(client_ip(outside, &trusted, all.iter().copied()), outside);
            let ip = client_ip("10.0.0.1".parse().unwrap(), &trusted, all.iter().copied());
            proptest::prop_assert_eq!(ip, canonical(ip));
            if ip == UNKNOWN_CLIENT {
                proptest::prop_assert!(!filter("forbid", &[]).permits(ip));
            }
        }
    }
}
