//! Secrets in a real SQLite store: versions, listing, deletion, resolution, the record of
//! uses, and what actually lands in the database file.

use rota_secrets::{SecretKey, SecretUse, SecretValue, SecretsError, put, remove, resolve_with};
use rota_store::{DB_FILE, Store};
use sqlx::Connection as _;

type TestResult = Result<(), Box<dyn std::error::Error>>;

/// A value that appears nowhere else, so finding it anywhere is a leak.
const PLAINTEXT: &str = "plaintext-7f3a9c-never-stored";

struct Fixture {
    dir: tempfile::TempDir,
    store: Store,
    key: SecretKey,
}

impl Fixture {
    /// Stores a new version of `namespace/name` with this value; its version number.
    async fn put(
        &self,
        namespace: &str,
        name: &str,
        value: &str,
        actor: &str,
    ) -> Result<i64, SecretsError> {
        put(
            &self.store,
            &self.key,
            namespace,
            name,
            &SecretValue::new(value),
            actor,
        )
        .await
    }
}

async fn fixture() -> Result<Fixture, Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let store = Store::open(dir.path()).await?;
    let key = SecretKey::load_or_create_from(None, dir.path())?;
    Ok(Fixture { dir, store, key })
}

fn names(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

/// An environment with nothing in it.
fn no_env(_: &str) -> Option<String> {
    None
}

#[tokio::test]
async fn versions_count_up_and_the_latest_is_resolved() -> TestResult {
    let f = fixture().await?;
    for (i, text) in ["one", "two", "three"].into_iter().enumerate() {
        let version = f.put("ops", "TOKEN", text, "me").await?;
        assert_eq!(version, i as i64 + 1);
    }
    // Another name and another namespace have their own counters.
    assert_eq!(f.put("ops", "OTHER", "x", "me").await?, 1);
    assert_eq!(f.put("dev", "TOKEN", "d", "me").await?, 1);

    let resolved = resolve_with(&f.store, Some(&f.key), "ops", &names(&["TOKEN"]), no_env).await?;
    assert_eq!(resolved.values["TOKEN"].expose(), "three");
    assert_eq!(
        resolved.uses,
        vec![SecretUse {
            namespace: "ops".into(),
            name: "TOKEN".into(),
            version: Some(3),
        }]
    );
    let dev = resolve_with(&f.store, Some(&f.key), "dev", &names(&["TOKEN"]), no_env).await?;
    assert_eq!(dev.values["TOKEN"].expose(), "d");
    Ok(())
}

#[tokio::test]
async fn listing_shows_names_and_versions_never_values() -> TestResult {
    let f = fixture().await?;
    f.put("ops", "TOKEN", PLAINTEXT, "alice").await?;
    f.put("ops", "TOKEN", PLAINTEXT, "bob").await?;
    f.put("ops", "HOOK", PLAINTEXT, "alice").await?;
    let list = f.store.list_secrets("ops").await?;
    let shown: Vec<(&str, i64, i64, &str)> = list
        .iter()
        .map(|s| {
            (
                s.name.as_str(),
                s.latest_version,
                s.versions,
                s.updated_by.as_str(),
            )
        })
        .collect();
    assert_eq!(shown, [("HOOK", 1, 1, "alice"), ("TOKEN", 2, 2, "bob")]);
    assert!(list.iter().all(|s| s.created_at <= s.updated_at));
    let text = format!("{list:?}");
    assert!(!text.contains(PLAINTEXT), "{text}");
    assert!(f.store.list_secrets("dev").await?.is_empty());
    Ok(())
}

#[tokio::test]
async fn removing_hides_every_version_and_numbers_are_not_reused() -> TestResult {
    let f = fixture().await?;
    f.put("ops", "TOKEN", "a", "me").await?;
    f.put("ops", "TOKEN", "b", "me").await?;
    assert_eq!(remove(&f.store, "ops", "TOKEN", "me").await?, 2);
    assert_eq!(remove(&f.store, "ops", "TOKEN", "me").await?, 0);
    assert!(f.store.list_secrets("ops").await?.is_empty());
    assert!(f.store.latest_secret("ops", "TOKEN").await?.is_none());
    match resolve_with(&f.store, Some(&f.key), "ops", &names(&["TOKEN"]), no_env).await {
        Err(SecretsError::Missing { names, .. }) => assert_eq!(names, ["TOKEN"]),
        other => panic!("expected Missing, got {other:?}"),
    }
    assert_eq!(f.put("ops", "TOKEN", "c", "me").await?, 3);
    let list = f.store.list_secrets("ops").await?;
    assert_eq!((list[0].latest_version, list[0].versions), (3, 1));
    Ok(())
}

#[tokio::test]
async fn the_environment_is_the_fallback_for_names_the_store_lacks() -> TestResult {
    let f = fixture().await?;
    f.put("ops", "STORED", "from-store", "me").await?;
    let env = |name: &str| match name {
        "STORED" => Some("from-env-loses".to_owned()),
        "ONLY_ENV" => Some("from-env".to_owned()),
        _ => None,
    };
    let wanted = names(&["STORED", "ONLY_ENV"]);
    let resolved = resolve_with(&f.store, Some(&f.key), "ops", &wanted, env).await?;
    assert_eq!(resolved.values["STORED"].expose(), "from-store");
    assert_eq!(resolved.values["ONLY_ENV"].expose(), "from-env");
    let versions: Vec<_> = resolved
        .uses
        .iter()
        .map(|u| (u.name.as_str(), u.version))
        .collect();
    assert_eq!(versions, [("STORED", Some(1)), ("ONLY_ENV", None)]);
    assert_eq!(resolved.uses[1].target(), "ops/ONLY_ENV@env");
    // Without a key the environment still works; a stored secret is an error, not a
    // silent fallback to the environment.
    let env_only = resolve_with(&f.store, None, "ops", &names(&["ONLY_ENV"]), env).await?;
    assert_eq!(env_only.exposed()["ONLY_ENV"], "from-env");
    match resolve_with(&f.store, None, "ops", &wanted, env).await {
        Err(SecretsError::NoKey { name, .. }) => assert_eq!(name, "STORED"),
        other => panic!("expected NoKey, got {other:?}"),
    }
    match resolve_with(
        &f.store,
        Some(&f.key),
        "ops",
        &names(&["A", "B", "ONLY_ENV"]),
        env,
    )
    .await
    {
        Err(error @ SecretsError::Missing { .. }) => {
            assert!(error.to_string().ends_with("A, B"), "{error}");
        }
        other => panic!("expected Missing, got {other:?}"),
    }
    Ok(())
}

#[tokio::test]
async fn a_wrong_key_is_an_error_not_a_fallback() -> TestResult {
    let f = fixture().await?;
    f.put("ops", "TOKEN", "v", "me").await?;
    let other = SecretKey::generate()?;
    let env = |_: &str| Some("env".to_owned());
    match resolve_with(&f.store, Some(&other), "ops", &names(&["TOKEN"]), env).await {
        Err(SecretsError::Open { name, version, .. }) => {
            assert_eq!((name.as_str(), version), ("TOKEN", 1))
        }
        other => panic!("expected Open, got {other:?}"),
    }
    Ok(())
}

/// Opens the database file directly, as an attacker with file access would.
async fn raw(dir: &std::path::Path) -> Result<sqlx::SqliteConnection, sqlx::Error> {
    let url = format!("sqlite://{}", dir.join(DB_FILE).display());
    sqlx::SqliteConnection::connect(&url).await
}

#[tokio::test]
async fn a_ciphertext_moved_to_another_row_does_not_open() -> TestResult {
    let f = fixture().await?;
    f.put("ops", "A", "value-of-a", "me").await?;
    f.put("ops", "B", "value-of-b", "me").await?;
    f.put("ops", "B", "value-of-b-2", "me").await?;
    let mut db = raw(f.dir.path()).await?;
    // A's value copied over B's latest version.
    sqlx::query(
        "UPDATE secrets SET (nonce, ciphertext) = (SELECT nonce, ciphertext FROM secrets \
         WHERE name = 'A' AND version = 1) WHERE name = 'B' AND version = 2",
    )
    .execute(&mut db)
    .await?;
    let result = resolve_with(&f.store, Some(&f.key), "ops", &names(&["B"]), no_env).await;
    assert!(
        matches!(result, Err(SecretsError::Open { version: 2, .. })),
        "{result:?}"
    );
    // B's version 1 moved up to version 2 (a rollback to an older value) fails as well.
    sqlx::query(
        "UPDATE secrets SET (nonce, ciphertext) = (SELECT nonce, ciphertext FROM secrets \
         WHERE name = 'B' AND version = 1) WHERE name = 'B' AND version = 2",
    )
    .execute(&mut db)
    .await?;
    let result = resolve_with(&f.store, Some(&f.key), "ops", &names(&["B"]), no_env).await;
    assert!(
        matches!(result, Err(SecretsError::Open { version: 2, .. })),
        "{result:?}"
    );
    // A's row moved to another namespace fails too.
    sqlx::query("UPDATE secrets SET namespace = 'dev' WHERE name = 'A'")
        .execute(&mut db)
        .await?;
    let result = resolve_with(&f.store, Some(&f.key), "dev", &names(&["A"]), no_env).await;
    assert!(
        matches!(result, Err(SecretsError::Open { .. })),
        "{result:?}"
    );
    db.close().await?;
    Ok(())
}

#[tokio::test]
async fn the_database_file_never_holds_the_plaintext() -> TestResult {
    let f = fixture().await?;
    f.put("ops", "TOKEN_NAME_MARKER", PLAINTEXT, "me").await?;
    let resolved = resolve_with(
        &f.store,
        Some(&f.key),
        "ops",
        &names(&["TOKEN_NAME_MARKER"]),
        no_env,
    )
    .await?;
    f.store
        .record_secret_use("run-1", &resolved.uses, jiff::Timestamp::now())
        .await?;
    // Move everything from the write-ahead log into the main file, then read both.
    let mut db = raw(f.dir.path()).await?;
    sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
        .execute(&mut db)
        .await?;
    db.close().await?;
    f.store.close().await;
    let mut bytes = std::fs::read(f.dir.path().join(DB_FILE))?;
    if let Ok(wal) = std::fs::read(f.dir.path().join(format!("{DB_FILE}-wal"))) {
        bytes.extend(wal);
    }
    let contains = |needle: &[u8]| bytes.windows(needle.len()).any(|w| w == needle);
    // The name is stored in clear, which shows this is the file that holds the row.
    assert!(
        contains(b"TOKEN_NAME_MARKER"),
        "the secret's row is not in the file"
    );
    assert!(
        !contains(PLAINTEXT.as_bytes()),
        "the plaintext is in the database file"
    );
    Ok(())
}

#[tokio::test]
async fn every_use_is_recorded_and_audited() -> TestResult {
    let f = fixture().await?;
    f.put("ops", "TOKEN", "a", "alice").await?;
    f.put("ops", "TOKEN", "b", "alice").await?;
    let env = |name: &str| (name == "FROM_ENV").then(|| "e".to_owned());
    let resolved = resolve_with(
        &f.store,
        Some(&f.key),
        "ops",
        &names(&["TOKEN", "FROM_ENV"]),
        env,
    )
    .await?;
    f.store
        .record_secret_use("run-42", &resolved.uses, jiff::Timestamp::now())
        .await?;

    assert_eq!(f.store.run_secret_uses("run-42").await?, {
        let mut uses = resolved.uses.clone();
        uses.sort_by(|a, b| a.name.cmp(&b.name));
        uses
    });
    let audit = f.store.list_audit(0, 100).await?;
    let entries: Vec<_> = audit
        .iter()
        .map(|e| {
            (
                e.actor.as_str(),
                e.action.as_str(),
                e.target.as_str(),
                e.source.as_deref(),
            )
        })
        .collect();
    assert_eq!(
        entries,
        [
            ("alice", "secret.set", "ops/TOKEN@1", None),
            ("alice", "secret.set", "ops/TOKEN@2", None),
            ("engine", "secret.use", "ops/TOKEN@2", Some("run/run-42")),
            (
                "engine",
                "secret.use",
                "ops/FROM_ENV@env",
                Some("run/run-42")
            ),
        ]
    );
    remove(&f.store, "ops", "TOKEN", "bob").await?;
    let last = f.store.list_audit(4, 10).await?;
    assert_eq!(
        (
            last[0].actor.as_str(),
            last[0].action.as_str(),
            last[0].target.as_str()
        ),
        ("bob", "secret.delete", "ops/TOKEN")
    );
    assert_eq!(f.store.check_audit_chain().await?, None);
    Ok(())
}

#[tokio::test]
async fn names_that_cannot_be_environment_variables_are_refused() -> TestResult {
    let f = fixture().await?;
    for bad in ["", "1ABC", "A-B", "A B", "A=B", "ÄBC"] {
        let result = f.put("ops", bad, "v", "me").await;
        assert!(
            matches!(result, Err(SecretsError::InvalidName(_))),
            "{bad:?}: {result:?}"
        );
    }
    assert!(f.store.list_secrets("ops").await?.is_empty());
    Ok(())
}
