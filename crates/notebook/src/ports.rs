//! Ports for a kernel's five channels.
//!
//! In Jupyter's connection-file protocol the client picks the ports and the kernel binds
//! them, so there is a window between the client releasing a port and the kernel binding
//! it. If two kernels started at once by this process were handed the same port in that
//! window, one would fail to bind and exit while its client waited on the other kernel's
//! socket. Ports handed out recently are therefore remembered and never handed out again
//! within [`REMEMBER`]. Another process can still take a port in the window; the kernel
//! launcher notices that from the kernel's exit and starts it again on fresh ports.

use std::net::{IpAddr, TcpListener};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// How long a handed-out port stays off limits: far longer than any kernel takes to bind.
const REMEMBER: Duration = Duration::from_secs(120);

/// How many ports the operating system may offer per port wanted before giving up.
const OFFERS_PER_PORT: usize = 50;

static RECENT: Mutex<Vec<(u16, Instant)>> = Mutex::new(Vec::new());

/// `count` distinct free ports on `ip` that this process has not handed out within
/// [`REMEMBER`], each with the listener that holds it until the kernel is spawned.
pub(crate) fn reserve(ip: IpAddr, count: usize) -> std::io::Result<(Vec<u16>, Vec<TcpListener>)> {
    let mut ports = Vec::with_capacity(count);
    let mut held = Vec::with_capacity(count);
    // Refused offers stay bound until we are done, so the OS does not offer them again.
    let mut refused = Vec::new();
    for _ in 0..count * OFFERS_PER_PORT {
        if ports.len() == count {
            break;
        }
        let listener = TcpListener::bind((ip, 0))?;
        let port = listener.local_addr()?.port();
        let fresh = claim(
            &mut RECENT.lock().unwrap_or_else(PoisonError::into_inner),
            port,
            Instant::now(),
        );
        if fresh {
            ports.push(port);
            held.push(listener);
        } else {
            refused.push(listener);
        }
    }
    if ports.len() < count {
        return Err(std::io::Error::other(format!(
            "no {count} free ports on {ip} that were not recently given to another kernel"
        )));
    }
    Ok((ports, held))
}

/// Record `port` in `recent` as handed out at `now`; false when it already was within
/// [`REMEMBER`].
fn claim(recent: &mut Vec<(u16, Instant)>, port: u16, now: Instant) -> bool {
    recent.retain(|(_, at)| now.saturating_duration_since(*at) < REMEMBER);
    if recent.iter().any(|(p, _)| *p == port) {
        return false;
    }
    recent.push((port, now));
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;
    use std::net::Ipv4Addr;

    #[test]
    fn a_port_is_not_handed_out_twice_until_it_is_forgotten() {
        let mut recent = Vec::new();
        let start = Instant::now();
        assert!(claim(&mut recent, 40_000, start));
        assert!(claim(&mut recent, 40_001, start));
        assert!(!claim(&mut recent, 40_000, start + Duration::from_secs(1)));
        assert!(claim(
            &mut recent,
            40_000,
            start + REMEMBER + Duration::from_secs(1)
        ));
    }

    #[test]
    fn reservations_never_share_a_port_even_after_release() {
        let ip = IpAddr::V4(Ipv4Addr::LOCALHOST);
        let mut seen = HashSet::new();
        for _ in 0..40 {
            // Each reservation's listeners are dropped at once, as the launcher does
            // when it spawns the kernel: the OS may offer those ports again.
            let (ports, _) = reserve(ip, 5).expect("reserve");
            assert_eq!(ports.len(), 5);
            for port in ports {
                assert!(seen.insert(port), "port {port} handed out twice");
            }
        }
    }
}
