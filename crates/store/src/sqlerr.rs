//! Maps driver errors onto [`StoreError`], the part of the interface callers act on.
//!
//! The one distinction that matters to callers is transient unavailability (the API answers
//! 503 and clients retry) versus everything else: connection, pool and I/O failures, an
//! administrator or crash shutdown, a statement timeout, a lock that did not come free, and a
//! full disk are "unavailable"; constraint violations are conflicts or missing references.

use crate::{Backend, StoreError};
use sqlx::error::DatabaseError;

/// Maps an error of the SQLite backend.
pub(crate) fn sqlite(e: sqlx::Error) -> StoreError {
    map(e, Backend::Sqlite)
}

/// Maps an error of the PostgreSQL backend.
pub(crate) fn pg(e: sqlx::Error) -> StoreError {
    map(e, Backend::Postgres)
}

/// Names the missing row of a foreign-key violation (`NotFound("user or site")`).
pub(crate) fn missing(what: &'static str) -> impl Fn(StoreError) -> StoreError {
    move |e| match e {
        StoreError::NotFound(_) => StoreError::NotFound(what),
        other => other,
    }
}

fn map(e: sqlx::Error, backend: Backend) -> StoreError {
    match e {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => StoreError::Unavailable(e.to_string()),
        sqlx::Error::Database(ref db) => {
            if db.is_unique_violation() {
                StoreError::Conflict(db.message().to_owned())
            } else if db.is_foreign_key_violation() {
                StoreError::NotFound("referenced row")
            } else if is_transient(db.as_ref(), backend) {
                StoreError::Unavailable(e.to_string())
            } else {
                StoreError::Database(e.to_string())
            }
        }
        sqlx::Error::ColumnDecode { .. } | sqlx::Error::Decode(_) => {
            StoreError::Corrupt(e.to_string())
        }
        sqlx::Error::Migrate(_) => StoreError::Migration(e.to_string()),
        sqlx::Error::Configuration(_) => StoreError::Config(e.to_string()),
        _ => StoreError::Database(e.to_string()),
    }
}

fn is_transient(db: &dyn DatabaseError, backend: Backend) -> bool {
    let Some(code) = db.code() else {
        return false;
    };
    match backend {
        // Extended result codes; the primary code is the low byte.
        Backend::Sqlite => code.parse::<i32>().is_ok_and(|c| {
            matches!(
                c & 0xff,
                5 /* BUSY */ | 6 /* LOCKED */ | 10 /* IOERR */ | 13 /* FULL */ | 14 /* CANTOPEN */
            )
        }),
        // SQLSTATE: connection exceptions, insufficient resources (too many connections, disk
        // full, out of memory), operator intervention (admin/crash shutdown, cannot connect
        // now, statement timeout) and the transaction rollbacks a retry resolves.
        Backend::Postgres => {
            code.starts_with("08")
                || code.starts_with("53")
                || code.starts_with("57")
                || code == "40001"
                || code == "40P01"
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pool_and_io_failures_are_unavailable() {
        for e in [
            sqlx::Error::PoolTimedOut,
            sqlx::Error::PoolClosed,
            sqlx::Error::Io(std::io::Error::from(std::io::ErrorKind::ConnectionRefused)),
        ] {
            assert!(matches!(pg(e), StoreError::Unavailable(_)));
        }
        assert!(matches!(
            sqlite(sqlx::Error::RowNotFound),
            StoreError::Database(_)
        ));
    }

    #[test]
    fn missing_names_only_not_found() {
        let name = missing("user or site");
        assert!(matches!(
            name(StoreError::NotFound("referenced row")),
            StoreError::NotFound("user or site")
        ));
        assert!(matches!(
            name(StoreError::Conflict("x".into())),
            StoreError::Conflict(_)
        ));
    }
}
