//! Ids that appear in paths and queries, checked when they are parsed: a malformed id is
//! a 400 problem before any handler or query runs.

use std::fmt;

use serde::Deserialize;

/// Whether `id` is a valid namespace or job id: 3–64 of `a-z`, `0-9` and `-`, not starting
/// with `-` (the job-file rule).
fn is_name(id: &str) -> bool {
    (3..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !id.starts_with('-')
}

/// Whether `id` looks like a run or token id: 1–64 of `a-z` and `0-9`.
fn is_opaque_id(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
}

macro_rules! checked_id {
    ($(#[$doc:meta])* $name:ident, $check:ident, $what:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, Deserialize)]
        #[serde(try_from = "String")]
        pub struct $name(String);

        impl $name {
            /// The id as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<String> for $name {
            type Error = String;

            fn try_from(value: String) -> Result<Self, Self::Error> {
                if $check(&value) {
                    Ok($name(value))
                } else {
                    Err(format!(concat!("{:?} is not a valid ", $what), value))
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

checked_id!(
    /// A namespace name.
    Namespace,
    is_name,
    "namespace (3–64 characters of a-z, 0-9 and -)"
);
checked_id!(
    /// A job id.
    JobId,
    is_name,
    "job id (3–64 characters of a-z, 0-9 and -)"
);
checked_id!(
    /// A run id.
    RunId,
    is_opaque_id,
    "run id (1–64 characters of a-z and 0-9)"
);
checked_id!(
    /// A token id.
    TokenId,
    is_opaque_id,
    "token id (1–64 characters of a-z and 0-9)"
);

#[cfg(test)]
mod tests {
    #[test]
    fn run_ids_are_well_formed_and_distinct() {
        let a = rota_store::ids::new_run_id();
        let b = rota_store::ids::new_run_id();
        assert_eq!(a.len(), 26);
        assert_ne!(a, b);
        assert!(
            super::RunId::try_from(a).is_ok(),
            "the API accepts its own ids"
        );
    }
}
