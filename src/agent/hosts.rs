//! Which hosts an agent's runs may send traffic to: [`HostAllowlist`].
//!
//! The person starting the server lists hosts (`--allow-host`, repeatable):
//! a name (`api.staging.test`), a name or address with a port
//! (`localhost:8080`, `[::1]:8080`), an address (`10.0.0.7`) or a CIDR
//! block (`10.0.0.0/8`). Without any, only loopback is allowed
//! (`127.0.0.0/8` and `::1`).
//!
//! A run's target is judged on the addresses its name resolved to, the
//! only ones the engine ever connects to (see `runner::AddressPolicy`), so
//! a name that resolves somewhere unexpected is caught before the first
//! request. Every address must be allowed: by a CIDR or address rule that
//! contains it, or by a name rule naming the target. Some addresses are
//! refused even then, because no load test should reach them by accident:
//! unspecified (`0.0.0.0`, `[::]`: on Linux they reach the local machine),
//! link-local (`169.254.0.0/16`, `fe80::/10`), cloud metadata services
//! (`169.254.169.254`, `fd00:ec2::254`, `100.100.100.200`,
//! `168.63.129.16`), broadcast and multicast. Only a rule that lies wholly
//! inside such a range allows an address in it (`--allow-host
//! 169.254.169.254`), so `0.0.0.0/0` or a name never does. IPv6 addresses
//! that carry an IPv4 address (IPv4-mapped `::ffff:0:0/96`, NAT64
//! `64:ff9b::/96` and `64:ff9b:1::/48`, IPv4-compatible `::/96`, 6to4
//! `2002::/16`) are judged as the IPv4 address they carry, since that is
//! where a translator or tunnel delivers them.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// The hosts runs may reach.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostAllowlist {
    rules: Vec<HostRule>,
}

/// One `--allow-host` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostRule {
    /// A host name, lowercase, as the target's URL writes it.
    Name { name: String, port: Option<u16> },
    /// An address block (a single address is a /32 or /128).
    Net { net: IpNet, port: Option<u16> },
}

/// An address and a prefix length: a CIDR block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpNet {
    pub addr: IpAddr,
    pub prefix: u8,
}

/// Address ranges refused unless a rule inside them allows them, and what
/// to call them in a message.
const SPECIAL: [(&str, u8, &str); 12] = [
    ("0.0.0.0", 8, "an unspecified (\"this host\") address"),
    ("::", 128, "the unspecified address"),
    ("169.254.169.254", 32, "a cloud metadata address"),
    ("169.254.0.0", 16, "a link-local address"),
    ("fd00:ec2::254", 128, "a cloud metadata address"),
    ("100.100.100.200", 32, "a cloud metadata address"),
    ("168.63.129.16", 32, "a cloud platform address"),
    ("fe80::", 10, "a link-local address"),
    ("255.255.255.255", 32, "the broadcast address"),
    ("224.0.0.0", 4, "a multicast address"),
    ("ff00::", 8, "a multicast address"),
    ("240.0.0.0", 4, "a reserved address"),
];

impl IpNet {
    pub fn new(addr: IpAddr, prefix: u8) -> Result<IpNet, String> {
        let addr = addr.to_canonical();
        let bits = bits(addr);
        if prefix > bits {
            return Err(format!("/{prefix} is longer than {bits} bits"));
        }
        Ok(IpNet { addr, prefix })
    }

    fn single(addr: IpAddr) -> IpNet {
        let addr = addr.to_canonical();
        IpNet {
            addr,
            prefix: bits(addr),
        }
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip.to_canonical()) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = mask(u32::BITS, self.prefix) as u32;
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = mask(u128::BITS, self.prefix);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }

    /// Whether every address of `self` is inside `outer`.
    fn within(&self, outer: &IpNet) -> bool {
        self.prefix >= outer.prefix && outer.contains(self.addr)
    }
}

impl fmt::Display for IpNet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.prefix == bits(self.addr) {
            write!(f, "{}", self.addr)
        } else {
            write!(f, "{}/{}", self.addr, self.prefix)
        }
    }
}

fn bits(addr: IpAddr) -> u8 {
    match addr {
        IpAddr::V4(_) => 32,
        IpAddr::V6(_) => 128,
    }
}

/// The top `prefix` bits of a `width`-bit number set.
fn mask(width: u32, prefix: u8) -> u128 {
    match u32::from(prefix) {
        0 => 0,
        p => (u128::MAX << (128 - p)) >> (128 - width),
    }
}

/// The special range `ip` is in, if any: the range and its description.
fn special(ip: IpAddr) -> Option<(IpNet, &'static str)> {
    SPECIAL.iter().find_map(|(addr, prefix, what)| {
        let net = IpNet::new(addr.parse().expect("a valid address"), *prefix).expect("a valid net");
        net.contains(ip).then_some((net, *what))
    })
}

impl HostRule {
    /// Parses `host`, `host:port`, `[v6]:port`, an address or a CIDR block.
    pub fn parse(text: &str) -> Result<HostRule, String> {
        let text = text.trim();
        let bad = |why: &str| {
            Err(format!(
                "--allow-host `{text}`: {why}; write a host (api.test), host:port (localhost:8080, [::1]:8080), an address (10.0.0.7) or a CIDR block (10.0.0.0/8)"
            ))
        };
        if text.is_empty() {
            return bad("it is empty");
        }
        if let Some((addr, prefix)) = text.split_once('/') {
            let Ok(addr) = addr.parse::<IpAddr>() else {
                return bad("a CIDR block needs an address before the `/`");
            };
            let Ok(prefix) = prefix.parse::<u8>() else {
                return bad("a CIDR block needs a prefix length after the `/`");
            };
            return match IpNet::new(addr, prefix) {
                Ok(net) => Ok(HostRule::Net { net, port: None }),
                Err(why) => bad(&why),
            };
        }
        if let Ok(addr) = text.parse::<IpAddr>() {
            return Ok(HostRule::Net {
                net: IpNet::single(addr),
                port: None,
            });
        }
        if let Ok(addr) = text.parse::<SocketAddr>() {
            return Ok(HostRule::Net {
                net: IpNet::single(addr.ip()),
                port: Some(addr.port()),
            });
        }
        let (name, port) = match text.rsplit_once(':') {
            Some((name, port)) => match port.parse::<u16>() {
                Ok(port) => (name, Some(port)),
                Err(_) => return bad("the port is not a number from 0 to 65535"),
            },
            None => (text, None),
        };
        let name = name.trim_end_matches('.').to_ascii_lowercase();
        let valid = !name.is_empty()
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b == b'_');
        if !valid {
            return bad("that is not a host name");
        }
        Ok(HostRule::Name { name, port })
    }

    fn port_matches(port: Option<u16>, actual: u16) -> bool {
        port.is_none_or(|p| p == actual)
    }

    /// Whether this rule lets `host` reach `addr`; `special` is the range
    /// `addr` is in, when it is one refused by default.
    fn allows(&self, host: &str, addr: SocketAddr, special: Option<&IpNet>) -> bool {
        match self {
            HostRule::Name { name, port } => {
                special.is_none()
                    && name.eq_ignore_ascii_case(host.trim_end_matches('.'))
                    && Self::port_matches(*port, addr.port())
            }
            HostRule::Net { net, port } => {
                net.contains(addr.ip())
                    && Self::port_matches(*port, addr.port())
                    && special.is_none_or(|range| net.within(range))
            }
        }
    }
}

impl fmt::Display for HostRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HostRule::Name { name, port: None } => f.write_str(name),
            HostRule::Name {
                name,
                port: Some(p),
            } => write!(f, "{name}:{p}"),
            HostRule::Net { net, port: None } => write!(f, "{net}"),
            HostRule::Net { net, port: Some(p) } => match net.addr {
                IpAddr::V6(a) => write!(f, "[{a}]:{p}"),
                IpAddr::V4(a) => write!(f, "{a}:{p}"),
            },
        }
    }
}

impl Default for HostAllowlist {
    fn default() -> Self {
        HostAllowlist::loopback()
    }
}

impl HostAllowlist {
    /// Loopback only: `127.0.0.0/8` and `::1`.
    pub fn loopback() -> HostAllowlist {
        HostAllowlist {
            rules: vec![
                HostRule::Net {
                    net: IpNet {
                        addr: IpAddr::V4(Ipv4Addr::new(127, 0, 0, 0)),
                        prefix: 8,
                    },
                    port: None,
                },
                HostRule::Net {
                    net: IpNet::single(IpAddr::V6(Ipv6Addr::LOCALHOST)),
                    port: None,
                },
            ],
        }
    }

    /// The `--allow-host` entries; none means loopback only.
    pub fn parse<S: AsRef<str>>(entries: &[S]) -> Result<HostAllowlist, String> {
        if entries.is_empty() {
            return Ok(HostAllowlist::loopback());
        }
        let rules = entries
            .iter()
            .map(|e| HostRule::parse(e.as_ref()))
            .collect::<Result<_, _>>()?;
        Ok(HostAllowlist { rules })
    }

    /// Each rule as `--allow-host` would write it.
    pub fn entries(&self) -> Vec<String> {
        self.rules.iter().map(ToString::to_string).collect()
    }

    /// Whether `host` may be reached at every one of `addrs` (what it
    /// resolved to); `Err` says which address is refused and what to do.
    pub fn check(&self, host: &str, addrs: &[SocketAddr]) -> Result<(), String> {
        if addrs.is_empty() {
            return Err(format!("`{host}` resolves to no address"));
        }
        for addr in addrs {
            let addr = SocketAddr::new(carried_ip(addr.ip()), addr.port());
            let special = special(addr.ip());
            if self
                .rules
                .iter()
                .any(|r| r.allows(host, addr, special.as_ref().map(|(net, _)| net)))
            {
                continue;
            }
            let resolved = if host.parse::<IpAddr>().is_ok() {
                String::new()
            } else {
                format!(" resolves to {}, which", addr.ip())
            };
            let what = match special {
                Some((_, what)) => format!(
                    " is {what}: refused unless allowed by an entry inside its range (e.g. --allow-host {})",
                    addr.ip()
                ),
                None => format!(
                    " is not among this server's allowed hosts ({})",
                    self.entries().join(", ")
                ),
            };
            return Err(format!(
                "target `{host}` (port {}){resolved}{what}. No request was sent. Point the scenario's base_url at an allowed host, or ask the person running `loadctl serve-mcp` to add `--allow-host`",
                addr.port()
            ));
        }
        Ok(())
    }
}

/// The address `ip` is judged as: the IPv4 address an IPv6 address
/// carries (mapped, NAT64, IPv4-compatible or 6to4), else `ip` itself.
fn carried_ip(ip: IpAddr) -> IpAddr {
    let IpAddr::V6(v6) = ip.to_canonical() else {
        return ip.to_canonical();
    };
    let bits = u128::from(v6);
    let low32 = Ipv4Addr::from((bits & 0xffff_ffff) as u32);
    let seg = v6.segments();
    let nat64 = bits >> 32 == 0x0064_ff9b_0000_0000_0000_0000;
    // RFC 8215's local-use prefix carries the address in its last 32 bits
    // too (with the suffix form RFC 6052 gives for a /48, bits 64-71 zero).
    let nat64_local = seg[0] == 0x64 && seg[1] == 0xff9b && seg[2] == 1;
    let compatible = bits >> 32 == 0 && bits > 1;
    if nat64 || nat64_local || compatible {
        return IpAddr::V4(low32);
    }
    if seg[0] == 0x2002 {
        let [a, b] = seg[1].to_be_bytes();
        let [c, d] = seg[2].to_be_bytes();
        return IpAddr::V4(Ipv4Addr::new(a, b, c, d));
    }
    IpAddr::V6(v6)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sock(text: &str) -> SocketAddr {
        text.parse().unwrap()
    }

    #[test]
    fn rules_parse_names_ports_addresses_and_blocks() {
        let cases = [
            ("localhost", "localhost"),
            ("API.Test.", "api.test"),
            ("localhost:8080", "localhost:8080"),
            ("10.0.0.7", "10.0.0.7"),
            ("10.0.0.7:80", "10.0.0.7:80"),
            ("10.0.0.0/8", "10.0.0.0/8"),
            ("::1", "::1"),
            ("[::1]:8080", "[::1]:8080"),
            ("fd00::/8", "fd00::/8"),
            ("::ffff:10.0.0.1", "10.0.0.1"),
        ];
        for (text, shown) in cases {
            assert_eq!(HostRule::parse(text).unwrap().to_string(), shown, "{text}");
        }
        for bad in [
            "",
            "10.0.0.0/33",
            "x/8",
            "10.0.0.0/x",
            "host:port",
            "a b",
            "::1/129",
        ] {
            let e = HostRule::parse(bad).unwrap_err();
            assert!(e.starts_with(&format!("--allow-host `{bad}`")), "{e}");
        }
    }

    #[test]
    fn the_default_is_loopback_only() {
        let hosts = HostAllowlist::parse::<&str>(&[]).unwrap();
        assert_eq!(hosts.entries(), ["127.0.0.0/8", "::1"]);
        assert!(hosts
            .check("localhost", &[sock("127.0.0.1:80"), sock("[::1]:80")])
            .is_ok());
        assert!(hosts.check("127.0.0.2", &[sock("127.0.0.2:9")]).is_ok());
        let e = hosts
            .check("example.test", &[sock("93.184.216.34:443")])
            .unwrap_err();
        assert!(e.contains("resolves to 93.184.216.34, which is not among this server's allowed hosts (127.0.0.0/8, ::1)"), "{e}");
        assert!(e.contains("No request was sent"), "{e}");
        // Every address must be allowed, not just one.
        assert!(hosts
            .check("mixed.test", &[sock("127.0.0.1:80"), sock("10.1.2.3:80")])
            .is_err());
    }

    #[test]
    fn special_addresses_need_a_rule_inside_their_range() {
        let wide = HostAllowlist::parse(&["0.0.0.0/0", "::/0", "metadata.test"]).unwrap();
        for (host, addr, what) in [
            ("0.0.0.0", "0.0.0.0:80", "unspecified"),
            ("::", "[::]:80", "unspecified"),
            ("metadata.test", "169.254.169.254:80", "cloud metadata"),
            ("x", "169.254.10.1:80", "link-local"),
            ("x", "[fe80::1]:80", "link-local"),
            ("x", "[::ffff:169.254.169.254]:80", "cloud metadata"),
            ("x", "[fd00:ec2::254]:80", "cloud metadata"),
            ("x", "100.100.100.200:80", "cloud metadata"),
        ] {
            let e = wide.check(host, &[sock(addr)]).unwrap_err();
            assert!(e.contains(what), "{addr}: {e}");
        }
        assert!(wide.check("x", &[sock("10.9.8.7:80")]).is_ok());
        let explicit = HostAllowlist::parse(&["169.254.169.254", "0.0.0.0:8080"]).unwrap();
        assert!(explicit.check("x", &[sock("169.254.169.254:80")]).is_ok());
        assert!(explicit.check("0.0.0.0", &[sock("0.0.0.0:8080")]).is_ok());
        assert!(explicit.check("0.0.0.0", &[sock("0.0.0.0:8081")]).is_err());
    }

    #[test]
    fn ipv6_addresses_carrying_ipv4_are_judged_by_it() {
        for (v6, v4) in [
            ("::ffff:169.254.169.254", "169.254.169.254"),
            ("64:ff9b::a9fe:a9fe", "169.254.169.254"),
            ("64:ff9b:1::a9fe:a9fe", "169.254.169.254"),
            ("::a9fe:a9fe", "169.254.169.254"),
            ("2002:a9fe:a9fe::1", "169.254.169.254"),
            ("64:ff9b::7f00:1", "127.0.0.1"),
        ] {
            let carried = carried_ip(v6.parse().unwrap());
            assert_eq!(carried, v4.parse::<IpAddr>().unwrap(), "{v6}");
        }
        for kept in ["::", "::1", "2001:db8::1", "fe80::1"] {
            let ip: IpAddr = kept.parse().unwrap();
            assert_eq!(carried_ip(ip), ip, "{kept}");
        }
        let wide = HostAllowlist::parse(&["::/0", "0.0.0.0/0"]).unwrap();
        for addr in [
            "[64:ff9b::a9fe:a9fe]:80",
            "[2002:a9fe:a9fe::1]:80",
            "[::a9fe:a9fe]:80",
        ] {
            let e = wide.check("x", &[sock(addr)]).unwrap_err();
            assert!(e.contains("cloud metadata"), "{addr}: {e}");
        }
        let v6_only = HostAllowlist::parse(&["::/0"]).unwrap();
        assert!(v6_only.check("x", &[sock("[2002:a00:1::1]:80")]).is_err());
        assert!(v6_only.check("x", &[sock("[2001:db8::1]:80")]).is_ok());
    }

    #[test]
    fn names_and_ports_match_as_written() {
        let hosts = HostAllowlist::parse(&["api.test:8443", "10.0.0.0/8"]).unwrap();
        assert!(hosts.check("API.test", &[sock("192.0.2.1:8443")]).is_ok());
        assert!(hosts.check("api.test", &[sock("192.0.2.1:443")]).is_err());
        assert!(hosts.check("other.test", &[sock("10.2.3.4:1")]).is_ok());
        // An allowed name does not make its loopback address allowed for others.
        let e = hosts
            .check("localhost", &[sock("127.0.0.1:80")])
            .unwrap_err();
        assert!(e.contains("(api.test:8443, 10.0.0.0/8)"), "{e}");
    }

    #[test]
    fn blocks_contain_what_their_prefix_says() {
        let net = IpNet::new("10.1.0.0".parse().unwrap(), 16).unwrap();
        assert!(net.contains("10.1.255.255".parse().unwrap()));
        assert!(!net.contains("10.2.0.0".parse().unwrap()));
        assert!(!net.contains("::1".parse().unwrap()));
        let all = IpNet::new("::".parse().unwrap(), 0).unwrap();
        assert!(all.contains("2001:db8::1".parse().unwrap()));
        let v6 = IpNet::new("2001:db8::".parse().unwrap(), 32).unwrap();
        assert!(v6.contains("2001:db8:ffff::1".parse().unwrap()));
        assert!(!v6.contains("2001:db9::".parse().unwrap()));
    }
}
