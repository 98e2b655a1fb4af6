//! Keys: the environment variable, the key file's creation, reuse and permission checks.

use std::os::unix::fs::PermissionsExt as _;

use rota_secrets::{KEY_FILE, SecretKey, SecretsError, open, seal};

type TestResult = Result<(), Box<dyn std::error::Error>>;

#[test]
fn the_key_file_is_created_private_and_then_reused() -> TestResult {
    let home = tempfile::tempdir()?;
    let path = home.path().join(KEY_FILE);
    assert!(SecretKey::load_from(None, home.path())?.is_none());
    assert!(!path.exists(), "load must not create the key file");

    let first = SecretKey::load_or_create_from(None, home.path())?;
    let mode = std::fs::metadata(&path)?.permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "key file mode is {mode:o}");
    assert_eq!(std::fs::read_dir(home.path())?.count(), 1, "temp file left");

    let again = SecretKey::load_or_create_from(None, home.path())?;
    let loaded = SecretKey::load_from(None, home.path())?.ok_or("key file not found")?;
    assert_eq!(first.to_base64(), again.to_base64());
    assert_eq!(first.to_base64(), loaded.to_base64());
    let sealed = seal(&first, "ns", "A", 1, b"v")?;
    assert_eq!(open(&loaded, "ns", "A", 1, &sealed)?.expose(), "v");
    Ok(())
}

#[test]
fn a_key_file_readable_by_group_or_others_is_refused() -> TestResult {
    let home = tempfile::tempdir()?;
    SecretKey::load_or_create_from(None, home.path())?;
    let path = home.path().join(KEY_FILE);
    for mode in [0o640, 0o604, 0o660] {
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode))?;
        match SecretKey::load_from(None, home.path()) {
            Err(error @ SecretsError::KeyFileExposed { .. }) => {
                let message = error.to_string();
                assert!(message.contains("chmod 600"), "{message}");
                assert!(message.contains(&format!("{mode:04o}")), "{message}");
            }
            other => panic!("mode {mode:o}: expected a refusal, got {other:?}"),
        }
        assert!(SecretKey::load_or_create_from(None, home.path()).is_err());
    }
    Ok(())
}

#[test]
fn the_environment_key_wins_over_the_file() -> TestResult {
    let home = tempfile::tempdir()?;
    let file_key = SecretKey::load_or_create_from(None, home.path())?;
    let env_key = SecretKey::generate()?;
    let text = format!("{}\n", env_key.to_base64());
    let loaded = SecretKey::load_from(Some(&text), home.path())?.ok_or("no key")?;
    assert!(loaded.is_from_env());
    assert_eq!(loaded.to_base64(), env_key.to_base64());
    assert_ne!(loaded.to_base64(), file_key.to_base64());
    Ok(())
}

#[test]
fn a_malformed_key_is_refused_with_what_is_wrong() -> TestResult {
    let home = tempfile::tempdir()?;
    let short = "AAAA";
    match SecretKey::load_from(Some(short), home.path()) {
        Err(error @ SecretsError::BadEnvKey { .. }) => {
            assert!(
                error.to_string().contains("3 bytes instead of 32"),
                "{error}"
            );
        }
        other => panic!("expected BadEnvKey, got {other:?}"),
    }
    assert!(matches!(
        SecretKey::load_from(Some("not base64 at all!"), home.path()),
        Err(SecretsError::BadEnvKey { .. })
    ));
    let path = home.path().join(KEY_FILE);
    std::fs::write(&path, "garbage")?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
    assert!(matches!(
        SecretKey::load_from(None, home.path()),
        Err(SecretsError::BadKeyFile { .. })
    ));
    Ok(())
}

#[test]
fn debug_never_prints_key_material() -> TestResult {
    let home = tempfile::tempdir()?;
    for key in [
        SecretKey::generate()?,
        SecretKey::load_or_create_from(None, home.path())?,
    ] {
        let shown = format!("{key:?} {key:#?}");
        let b64 = key.to_base64();
        assert!(!shown.contains(&b64[..16]), "{shown}");
        assert!(shown.starts_with("SecretKey"), "{shown}");
    }
    Ok(())
}
