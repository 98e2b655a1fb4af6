//! Resource limits a step declares (`resources: { cpus, memory, pids }` on process steps;
//! the same three keys on a `container:` step): their syntax, one place for every kind that
//! takes them.
//!
//! Sizes follow the Docker CLI's reading, which users already type: a number of bytes, or a
//! number with a unit `b`, `k`, `m`, `g` or `t` (either case, optionally followed by `b` or
//! `ib`), every unit binary (`64m` is 64 MiB).

use serde::{Deserialize, Serialize};

use crate::convert::{Cx, get};
use crate::tree::{Kind, Node};

/// The smallest memory limit accepted: below this a shell does not start.
pub const MIN_MEMORY_BYTES: u64 = 1024 * 1024;
/// The most CPUs a limit may name.
pub const MAX_CPUS: f64 = 4096.0;

/// Limits on what one attempt of a step may use; each is unlimited when absent.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Resources {
    /// CPU time, in CPUs (`0.5` is half of one CPU's time).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpus: Option<f64>,
    /// Memory, in bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<u64>,
    /// Processes and threads alive at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pids: Option<u64>,
}

impl Resources {
    /// Whether no limit is set (the stored form then leaves the key out, so definitions
    /// and plan hashes made before the key existed do not change).
    pub fn is_empty(&self) -> bool {
        *self == Resources::default()
    }

    /// The limits as users write them, e.g. `cpus 0.5, memory 64m, pids 100`.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if let Some(cpus) = self.cpus {
            parts.push(format!("cpus {cpus}"));
        }
        if let Some(memory) = self.memory {
            parts.push(format!("memory {}", format_bytes(memory)));
        }
        if let Some(pids) = self.pids {
            parts.push(format!("pids {pids}"));
        }
        parts.join(", ")
    }
}

/// `bytes` in the largest binary unit that divides it, as a size is written (`64m`).
pub fn format_bytes(bytes: u64) -> String {
    const UNITS: [(&str, u64); 4] = [
        ("t", 1 << 40),
        ("g", 1 << 30),
        ("m", 1 << 20),
        ("k", 1 << 10),
    ];
    for (unit, size) in UNITS {
        if bytes >= size && bytes.is_multiple_of(size) {
            return format!("{}{unit}", bytes / size);
        }
    }
    bytes.to_string()
}

/// Reads a size: `1048576`, `512k`, `64m`, `64MiB`, `1.5g`. The error says what was
/// expected.
pub fn parse_bytes(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let expected = || {
        format!(
            "invalid size `{text}`: expected a number of bytes or a number with a unit \
             (k, m, g, t), e.g. `64m` or `1g`"
        )
    };
    let multiplier: u64 = match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        "t" | "tb" | "tib" => 1 << 40,
        _ => return Err(expected()),
    };
    if number.is_empty() || number.len() > 20 {
        return Err(expected());
    }
    let value: f64 = number.parse().map_err(|_| expected())?;
    let bytes = value * multiplier as f64;
    if !bytes.is_finite() || bytes >= u64::MAX as f64 {
        return Err(format!("size `{text}` is too large"));
    }
    Ok(bytes as u64)
}

/// Converts a `resources:` mapping, with a diagnostic at each wrong key or value.
pub(crate) fn convert(cx: &mut Cx, node: &Node, what: &str) -> Option<Resources> {
    let entries = cx.map(node, what)?;
    cx.unknown_keys(entries, &["cpus", "memory", "pids"], what);
    let before = cx.errors.len();
    let resources = Resources {
        cpus: get(entries, "cpus").and_then(|n| cpus(cx, n, &format!("`cpus` of {what}"))),
        memory: get(entries, "memory").and_then(|n| memory(cx, n, &format!("`memory` of {what}"))),
        pids: get(entries, "pids").and_then(|n| {
            cx.int_at_least(n, 1, &format!("`pids` of {what}"))
                .map(u64::from)
        }),
    };
    (cx.errors.len() == before).then_some(resources)
}

/// A CPU count: a positive number up to [`MAX_CPUS`].
pub(crate) fn cpus(cx: &mut Cx, node: &Node, what: &str) -> Option<f64> {
    let value = match &node.kind {
        Kind::Int(i) => *i as f64,
        Kind::Float(f) => *f,
        Kind::Str(s) => match s.trim().parse::<f64>() {
            Ok(f) => f,
            Err(_) => {
                cx.expected(node, "a number of CPUs (e.g. `0.5` or `2`)", what);
                return None;
            }
        },
        _ => {
            cx.expected(node, "a number of CPUs (e.g. `0.5` or `2`)", what);
            return None;
        }
    };
    // A quota below a thousandth of a CPU is below what the kernel can enforce
    // (a 1 ms quota in a 1 s period).
    if !(0.001..=MAX_CPUS).contains(&value) {
        cx.err(
            node.pos,
            format!("{what} must be between 0.001 and {MAX_CPUS}, found {value}"),
        );
        return None;
    }
    Some(value)
}

/// A memory size of at least [`MIN_MEMORY_BYTES`].
pub(crate) fn memory(cx: &mut Cx, node: &Node, what: &str) -> Option<u64> {
    let parsed = match &node.kind {
        Kind::Int(i) if *i >= 0 => u64::try_from(*i).map_err(|e| e.to_string()),
        Kind::Str(s) => parse_bytes(s),
        _ => {
            cx.expected(node, "a size (e.g. `64m` or `1g`)", what);
            return None;
        }
    };
    match parsed {
        Ok(bytes) if bytes >= MIN_MEMORY_BYTES => Some(bytes),
        Ok(bytes) => {
            cx.err(
                node.pos,
                format!("{what} must be at least 1m, found {bytes} bytes"),
            );
            None
        }
        Err(message) => {
            cx.err(node.pos, format!("{what}: {message}"));
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_as_docker_reads_them() {
        assert_eq!(parse_bytes("1048576"), Ok(1 << 20));
        assert_eq!(parse_bytes("64m"), Ok(64 << 20));
        assert_eq!(parse_bytes("64M"), Ok(64 << 20));
        assert_eq!(parse_bytes("64MiB"), Ok(64 << 20));
        assert_eq!(parse_bytes("512k"), Ok(512 << 10));
        assert_eq!(parse_bytes("1.5g"), Ok(3 << 29));
        assert!(parse_bytes("64x").is_err());
        assert!(parse_bytes("m").is_err());
        assert!(parse_bytes("1.2.3m").is_err());
        assert!(parse_bytes("99999999999999999999t").is_err());
    }

    #[test]
    fn sizes_print_in_their_largest_unit() {
        assert_eq!(format_bytes(64 << 20), "64m");
        assert_eq!(format_bytes(3 << 29), "1536m");
        assert_eq!(format_bytes(1000), "1000");
    }
}
