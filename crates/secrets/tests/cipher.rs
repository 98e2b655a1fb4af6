//! Sealing and opening: round trip, and every way a ciphertext must fail to open.

use rota_secrets::{SealedSecret, SecretKey, SecretsError, open, seal};

type TestResult = Result<(), Box<dyn std::error::Error>>;

#[track_caller]
fn assert_does_not_open(result: Result<rota_secrets::SecretValue, SecretsError>) {
    match result {
        Err(SecretsError::Open { .. }) => {}
        Err(other) => panic!("expected a decryption failure, got {other}"),
        Ok(_) => panic!("a tampered or misplaced ciphertext opened"),
    }
}

#[test]
fn seal_then_open_gives_the_plaintext_back() -> TestResult {
    let key = SecretKey::generate()?;
    let sealed = seal(&key, "ops", "API_TOKEN", 3, "tëst value\n".as_bytes())?;
    assert_eq!(sealed.nonce.len(), 24);
    assert!(!sealed.ciphertext.windows(4).any(|w| w == b"test"));
    let value = open(&key, "ops", "API_TOKEN", 3, &sealed)?;
    assert_eq!(value.expose(), "tëst value\n");
    Ok(())
}

#[test]
fn the_same_value_sealed_twice_differs() -> TestResult {
    let key = SecretKey::generate()?;
    let a = seal(&key, "ops", "A", 1, b"same")?;
    let b = seal(&key, "ops", "A", 1, b"same")?;
    assert_ne!(a.nonce, b.nonce);
    assert_ne!(a.ciphertext, b.ciphertext);
    Ok(())
}

#[test]
fn a_tampered_ciphertext_or_nonce_does_not_open() -> TestResult {
    let key = SecretKey::generate()?;
    let sealed = seal(&key, "ops", "A", 1, b"value")?;
    for i in 0..sealed.ciphertext.len() {
        let mut bad = sealed.clone();
        bad.ciphertext[i] ^= 0x01;
        assert_does_not_open(open(&key, "ops", "A", 1, &bad));
    }
    let mut bad = sealed.clone();
    bad.nonce[0] ^= 0x80;
    assert_does_not_open(open(&key, "ops", "A", 1, &bad));
    let short = SealedSecret {
        nonce: sealed.nonce[..12].to_vec(),
        ciphertext: sealed.ciphertext.clone(),
    };
    assert_does_not_open(open(&key, "ops", "A", 1, &short));
    let mut cut = sealed.clone();
    cut.ciphertext.pop();
    assert_does_not_open(open(&key, "ops", "A", 1, &cut));
    Ok(())
}

#[test]
fn another_key_does_not_open() -> TestResult {
    let key = SecretKey::generate()?;
    let other = SecretKey::generate()?;
    let sealed = seal(&key, "ops", "A", 1, b"value")?;
    assert_does_not_open(open(&other, "ops", "A", 1, &sealed));
    Ok(())
}

#[test]
fn a_ciphertext_only_opens_for_its_own_namespace_name_and_version() -> TestResult {
    let key = SecretKey::generate()?;
    let sealed = seal(&key, "ops", "A", 1, b"value")?;
    assert_does_not_open(open(&key, "ops", "B", 1, &sealed));
    assert_does_not_open(open(&key, "ops", "A", 2, &sealed));
    assert_does_not_open(open(&key, "dev", "A", 1, &sealed));
    // Length prefixes keep the boundary between namespace and name unambiguous.
    let joined = seal(&key, "a", "bc", 1, b"value")?;
    assert_does_not_open(open(&key, "ab", "c", 1, &joined));
    Ok(())
}

#[test]
fn values_never_show_in_debug_or_display() -> TestResult {
    let key = SecretKey::generate()?;
    let value = open(&key, "ns", "A", 1, &seal(&key, "ns", "A", 1, b"hunter2")?)?;
    assert_eq!(format!("{value}"), "***");
    assert_eq!(format!("{value:?}"), "***");
    assert_eq!(format!("{:?}", Some(&value)), "Some(***)");
    Ok(())
}
