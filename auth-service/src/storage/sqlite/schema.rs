//! The embedded store's schema: numbered migrations (`migrations/sqlite/`), embedded in the
//! binary, each applied once in its own transaction and recorded in `schema_migrations`, as the
//! PostgreSQL backend does with its own (`migrations/postgres/`). A file made before migrations
//! existed (tables present, no `schema_migrations`) is brought to the first versions' shape in
//! place and recorded as having them. A file with a version newer than this binary knows is
//! refused rather than run on.

use super::*;

/// Embedded migrations: (version, name, SQL). Append only; never edit a shipped one.
const MIGRATIONS: &[(i64, &str, &str)] = &[
    (
        1,
        "init",
        include_str!("../../../migrations/sqlite/0001_init.sql"),
    ),
    (
        2,
        "key_lifecycle",
        include_str!("../../../migrations/sqlite/0002_key_lifecycle.sql"),
    ),
    (
        3,
        "client_profiles",
        include_str!("../../../migrations/sqlite/0003_client_profiles.sql"),
    ),
    (
        4,
        "sign_in",
        include_str!("../../../migrations/sqlite/0004_sign_in.sql"),
    ),
    (
        5,
        "opaque_refresh",
        include_str!("../../../migrations/sqlite/0005_opaque_refresh.sql"),
    ),
];

/// The versions a file made before migrations existed already has: every earlier binary created
/// all of `0001`'s tables and added `0002`'s columns as they were missing.
const BEFORE_MIGRATIONS: i64 = 2;

/// Columns `0002` adds, which files made before migrations may or may not have.
const LEGACY_COLUMNS: &[(&str, &str, &str)] = &[
    ("signing_keys", "activated_at_us", "INTEGER"),
    ("signing_keys", "activate_after", "INTEGER"),
    ("signing_keys", "remove_after", "INTEGER"),
];

fn table_exists(conn: &Connection, table: &str) -> rusqlite::Result<bool> {
    conn.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?1")?
        .exists([table])
}

fn column_exists(conn: &Connection, table: &str, column: &str) -> rusqlite::Result<bool> {
    conn.prepare(&format!(
        "SELECT 1 FROM pragma_table_info('{table}') WHERE name = ?1"
    ))?
    .exists([column])
}

/// Brings the file to the newest schema this binary knows.
pub(super) fn migrate(conn: &mut Connection) -> anyhow::Result<()> {
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let versioned = table_exists(&tx, "schema_migrations")?;
    if !versioned {
        tx.execute_batch(
            "CREATE TABLE schema_migrations (
                 version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at_us INTEGER NOT NULL)",
        )?;
        if table_exists(&tx, "users")? {
            // Made before migrations: the first tables (created if missing, as every earlier
            // binary did) and the key lifecycle's columns (added where missing).
            tx.execute_batch(MIGRATIONS[0].2)?;
            for (table, column, kind) in LEGACY_COLUMNS {
                if !column_exists(&tx, table, column)? {
                    tx.execute_batch(&format!("ALTER TABLE {table} ADD COLUMN {column} {kind}"))?;
                }
            }
            for (version, name, _) in MIGRATIONS.iter().filter(|m| m.0 <= BEFORE_MIGRATIONS) {
                tx.execute(
                    "INSERT INTO schema_migrations (version, name, applied_at_us) VALUES (?1, ?2, ?3)",
                    params![version, name, now_us()],
                )?;
            }
            tracing::info!(
                versions = BEFORE_MIGRATIONS,
                "embedded store made before migrations: brought up to date in place"
            );
        }
    }
    let applied: Vec<i64> = {
        let mut stmt = tx.prepare("SELECT version FROM schema_migrations")?;
        let rows = stmt.query_map([], |r| r.get(0))?;
        rows.collect::<rusqlite::Result<_>>()?
    };
    let known = MIGRATIONS.iter().map(|m| m.0).max().unwrap_or(0);
    if let Some(v) = applied.iter().find(|v| **v > known) {
        anyhow::bail!(
            "the embedded store has migration {v}, newer than this binary knows ({known}): refusing to run an old version"
        );
    }
    for (version, name, sql) in MIGRATIONS {
        if !applied.contains(version) {
            tx.execute_batch(sql)?;
            tx.execute(
                "INSERT INTO schema_migrations (version, name, applied_at_us) VALUES (?1, ?2, ?3)",
                params![version, name, now_us()],
            )?;
            tracing::info!(version, name, "applied migration (embedded store)");
        }
    }
    tx.commit()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp() -> (std::path::PathBuf, std::path::PathBuf) {
        let dir = std::env::temp_dir().join(format!("sqlite-schema-{}", Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("auth.db");
        (dir, path)
    }

    fn versions(path: &Path) -> Vec<i64> {
        let conn = Connection::open(path).unwrap();
        let mut stmt = conn
            .prepare("SELECT version FROM schema_migrations ORDER BY version")
            .unwrap();
        stmt.query_map([], |r| r.get(0))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap()
    }

    #[test]
    fn a_new_file_gets_every_migration_in_order() {
        let (dir, path) = temp();
        drop(SqliteStore::open(&path, 30, 100).unwrap());
        assert_eq!(versions(&path), vec![1, 2, 3, 4, 5]);
        let conn = Connection::open(&path).unwrap();
        for (table, column, _) in LEGACY_COLUMNS {
            assert!(column_exists(&conn, table, column).unwrap(), "{column}");
        }
        drop(conn);
        // Opening again applies nothing twice.
        drop(SqliteStore::open(&path, 30, 100).unwrap());
        assert_eq!(versions(&path), vec![1, 2, 3, 4, 5]);
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// A refresh record written before `0005` (a signed refresh token's, no expiry of its own)
    /// still rotates; the record that replaces it has one.
    #[tokio::test]
    async fn a_refresh_record_from_before_opaque_tokens_still_rotates() {
        let (dir, path) = temp();
        let store = SqliteStore::open(&path, 30, 100).unwrap();
        let now = shared::unix_now();
        let session = NewSession {
            sid: "s1".into(),
            sub: "u1".into(),
            refresh_jti: Some("legacy-jti".into()),
            parent: None,
            browser: None,
            amr: "pwd".into(),
            auth_time: now,
            abs_exp: now + 3600,
            refresh_exp: now + 600,
            client_id: "app".into(),
            scope: String::new(),
            user_agent: String::new(),
        };
        assert!(SessionStore::create(&store, &session, now).await.unwrap());
        let conn = Connection::open(&path).unwrap();
        conn.execute("UPDATE refresh_tokens SET exp = NULL", [])
            .unwrap();
        assert!(
            store
                .refresh_record("legacy-jti", now)
                .await
                .unwrap()
                .is_some()
        );
        assert!(matches!(
            store
                .rotate("legacy-jti", "h2", now, 0, 600, now + 900)
                .await
                .unwrap(),
            Rotation::Rotated { .. }
        ));
        let exp: Option<i64> = conn
            .query_row("SELECT exp FROM refresh_tokens WHERE jti = 'h2'", [], |r| {
                r.get(0)
            })
            .unwrap();
        assert_eq!(exp, Some(now + 600));
        drop((conn, store));
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// A file of an earlier version: the first tables, a key without the lifecycle's columns, a
    /// user. It is upgraded in place and keeps its data.
    #[test]
    fn a_file_made_before_migrations_is_upgraded_in_place_and_keeps_its_data() {
        let (dir, path) = temp();
        let old = Connection::open(&path).unwrap();
        old.execute_batch(MIGRATIONS[0].2).unwrap();
        old.execute(
            "INSERT INTO users (id, username, username_key, password_hash, roles, created_at_us, updated_at_us)
             VALUES ('00000000-0000-4000-8000-000000000001', 'Alice', 'alice', 'h', '[\"user\"]', 1, 1)",
            [],
        )
        .unwrap();
        old.execute(
            "INSERT INTO signing_keys (kid, format_version, private_key, public_jwk, state, created_at_us)
             VALUES ('k1', 2, x'00', '{}', 'current', 1)",
            [],
        )
        .unwrap();
        drop(old);
        drop(SqliteStore::open(&path, 30, 100).unwrap());
        assert_eq!(versions(&path), vec![1, 2, 3, 4, 5]);
        let conn = Connection::open(&path).unwrap();
        let name: String = conn
            .query_row("SELECT username FROM users", [], |r| r.get(0))
            .unwrap();
        assert_eq!(name, "Alice");
        let (kid, remove_after): (String, Option<i64>) = conn
            .query_row("SELECT kid, remove_after FROM signing_keys", [], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .unwrap();
        assert_eq!((kid.as_str(), remove_after), ("k1", None));
        drop(conn);
        // A file an earlier binary had already given some of the columns to.
        let (dir2, path2) = temp();
        let half = Connection::open(&path2).unwrap();
        half.execute_batch(MIGRATIONS[0].2).unwrap();
        half.execute_batch("ALTER TABLE signing_keys ADD COLUMN activated_at_us INTEGER")
            .unwrap();
        drop(half);
        drop(SqliteStore::open(&path2, 30, 100).unwrap());
        assert_eq!(versions(&path2), vec![1, 2, 3, 4, 5]);
        let _ = std::fs::remove_dir_all(&dir);
        let _ = std::fs::remove_dir_all(&dir2);
    }

    #[test]
    fn a_file_from_a_newer_binary_is_refused() {
        let (dir, path) = temp();
        drop(SqliteStore::open(&path, 30, 100).unwrap());
        Connection::open(&path)
            .unwrap()
            .execute(
                "INSERT INTO schema_migrations (version, name, applied_at_us) VALUES (99, 'future', 0)",
                [],
            )
            .unwrap();
        let e = SqliteStore::open(&path, 30, 100).unwrap_err();
        assert!(e.to_string().contains("newer than this binary"), "{e:#}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
