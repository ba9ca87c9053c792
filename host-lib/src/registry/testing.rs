//! Test support: a PostgreSQL database of its own for each test.
//!
//! The server comes from `CITIZENCARD_PG_URL` (a URL whose user may create databases). As with
//! `CITIZENCARD_E2E`, without `CITIZENCARD_PG=1` a PostgreSQL test says it did not run and
//! returns; with it, a missing or unreachable server fails the test.

use std::sync::atomic::{AtomicU32, Ordering};

/// Whether PostgreSQL tests run (`CITIZENCARD_PG=1`); prints that `what` did not run otherwise.
pub fn pg_enabled(what: &str) -> bool {
    if std::env::var("CITIZENCARD_PG").as_deref() == Ok("1") {
        return true;
    }
    eprintln!("{what}: PostgreSQL test not run (set CITIZENCARD_PG=1 and CITIZENCARD_PG_URL)");
    false
}

/// A database created for one test, dropped with it.
#[derive(Debug)]
pub struct PgTestDb {
    admin_url: String,
    name: String,
    url: String,
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// `url` with its database replaced by `db`.
fn with_database(url: &str, db: &str) -> String {
    let (base, query) = match url.find('?') {
        Some(q) => (&url[..q], &url[q..]),
        None => (url, ""),
    };
    let scheme_end = base.find("://").map_or(0, |i| i + 3);
    let host_part = match base[scheme_end..].find('/') {
        Some(slash) => &base[..scheme_end + slash],
        None => base,
    };
    format!("{host_part}/{db}{query}")
}

impl PgTestDb {
    /// A fresh, empty database on the server of `CITIZENCARD_PG_URL`, named after the process
    /// and a counter. Panics when the server cannot be used (the test fails).
    pub fn create() -> PgTestDb {
        let admin_url = std::env::var("CITIZENCARD_PG_URL").unwrap_or_else(|_| {
            panic!(
                "CITIZENCARD_PG=1 but CITIZENCARD_PG_URL is not set (postgres://user@host:port/db)"
            )
        });
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let name = format!(
            "cc_{}_{}_{:x}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::SeqCst),
            nanos
        );
        let mut admin = postgres::Client::connect(&admin_url, postgres::NoTls)
            .unwrap_or_else(|e| panic!("PostgreSQL at {admin_url}: {e}"));
        admin
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .unwrap_or_else(|e| panic!("creating database {name}: {e}"));
        let url = with_database(&admin_url, &name);
        PgTestDb {
            admin_url,
            name,
            url,
        }
    }

    /// The database's URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// A plain client on the database (tests that edit it behind the registry's back).
    pub fn client(&self) -> postgres::Client {
        postgres::Client::connect(&self.url, postgres::NoTls)
            .unwrap_or_else(|e| panic!("PostgreSQL at {}: {e}", self.url))
    }
}

impl Drop for PgTestDb {
    fn drop(&mut self) {
        if let Ok(mut admin) = postgres::Client::connect(&self.admin_url, postgres::NoTls) {
            let _ = admin.batch_execute(&format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_is_replaced_in_urls() {
        assert_eq!(
            with_database("postgres://postgres@127.0.0.1:54329/postgres", "cc_1"),
            "postgres://postgres@127.0.0.1:54329/cc_1"
        );
        assert_eq!(
            with_database("postgres://u:p@h/db?sslmode=disable", "cc_2"),
            "postgres://u:p@h/cc_2?sslmode=disable"
        );
        assert_eq!(
            with_database("postgres://u@h", "cc_3"),
            "postgres://u@h/cc_3"
        );
    }
}
