//! Which process owns a run, and whether that process is still alive.
//!
//! A pid alone can be reused after a crash, so a run's owner is recorded as host, pid and a
//! start token: the boot id plus the process's start time in clock ticks since boot
//! (`/proc/<pid>/stat`, field 22). A process is the owner only if all three still match.

use std::path::Path;

/// Host name, from the kernel.
pub fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_owned())
        .unwrap_or_else(|_| "localhost".to_owned())
}

/// The start token of process `pid`, or `None` when no such process exists.
pub fn start_token(pid: u32) -> Option<String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let start_ticks = stat_field(&stat, 22)?;
    let boot_id = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").unwrap_or_default();
    Some(format!("{}:{start_ticks}", boot_id.trim()))
}

/// This process's start token.
pub fn own_start_token() -> String {
    start_token(std::process::id()).unwrap_or_default()
}

/// This process, as the owner of the runs it executes.
pub fn this_process() -> rota_store::Owner {
    rota_store::Owner {
        host: host_name(),
        pid: std::process::id(),
        start_token: own_start_token(),
    }
}

/// Whether the process recorded as (`host`, `pid`, `token`) is still running.
/// Processes on other hosts are assumed alive: only a lease can tell (fleet mode).
pub fn is_alive(host: &str, pid: u32, token: &str) -> bool {
    if host != host_name() {
        return true;
    }
    if !Path::new(&format!("/proc/{pid}")).exists() {
        return false;
    }
    match start_token(pid) {
        Some(current) => current == token && !is_zombie(pid),
        None => false,
    }
}

fn is_zombie(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| stat_field(&stat, 3))
        .is_some_and(|state| state == "Z")
}

/// Field `n` (1-based, as in proc(5)) of a `/proc/<pid>/stat` line. The command name
/// (field 2) may hold spaces and parentheses, so fields are counted after its last `)`.
fn stat_field(stat: &str, n: usize) -> Option<String> {
    let after_name = &stat[stat.rfind(')')? + 1..];
    after_name
        .split_whitespace()
        .nth(n.checked_sub(3)?)
        .map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_process_is_alive_and_a_changed_token_is_not() {
        let pid = std::process::id();
        let token = own_start_token();
        assert!(!token.is_empty());
        assert!(is_alive(&host_name(), pid, &token));
        assert!(!is_alive(&host_name(), pid, "other-boot:1"));
    }

    #[test]
    fn stat_fields_are_counted_after_the_command_name() {
        let stat = "42 (a b) c) S 1 42 42 0 -1 4194560 0 0 0 0 0 0 0 0 20 0 1 0 777 0";
        assert_eq!(stat_field(stat, 3).as_deref(), Some("S"));
        assert_eq!(stat_field(stat, 22).as_deref(), Some("777"));
    }
}
