//! Run ids: 26 characters, lower-case Crockford base32, time-ordered like ULIDs, so
//! listings sort by creation and a short prefix is usually unique. They live here, with the
//! runs they name, so every writer of runs (engine, server, API) uses the one scheme.

const ALPHABET: &[u8; 32] = b"0123456789abcdefghjkmnpqrstvwxyz";

/// How many characters a whole run id has; anything shorter is an abbreviation.
pub const RUN_ID_LEN: usize = 26;

/// A new, unique, time-ordered run id.
pub fn new_run_id() -> String {
    let millis = jiff::Timestamp::now().as_millisecond().max(0) as u128;
    let random: u128 = rand::random::<u128>() & ((1u128 << 80) - 1);
    let mut value = (millis << 80) | random;
    let mut id = [0u8; RUN_ID_LEN];
    for slot in id.iter_mut().rev() {
        *slot = ALPHABET[(value & 31) as usize];
        value >>= 5;
    }
    String::from_utf8_lossy(&id).into_owned()
}

#[cfg(test)]
mod tests {
    #[test]
    fn ids_are_unique_sortable_and_well_formed() {
        let a = super::new_run_id();
        std::thread::sleep(std::time::Duration::from_millis(2));
        let b = super::new_run_id();
        assert_eq!(a.len(), super::RUN_ID_LEN);
        assert!(a < b, "{a} !< {b}");
        assert!(a.bytes().all(|c| super::ALPHABET.contains(&c)));
    }
}
