//! The registry's one way into its database, SQLite or PostgreSQL.
//!
//! Registry code writes each statement once, with SQLite's numbered placeholders (`?1`, `?2`,
//! …), runs it through a [`Conn`] (or a [`Tx`], which is one) and reads typed columns from a
//! [`Row`]. On PostgreSQL the placeholders become `$1`, `$2`, … and the values are converted to
//! the parameter types the server infers; every integer column there is `BIGINT`, so integers
//! read back as `i64` on both backends. Only DDL (the migrations in `schema.rs`), the chain's
//! enforcement (`chain.rs`) and a few statements whose forms differ (row locks, sequences) are
//! written per dialect, next to a [`Conn::dialect`] test.
//!
//! rusqlite and postgres are used only inside `registry/`: the rest of the code base sees
//! [`super::Registry`] and [`super::RegistryError`].

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::fmt;
use std::rc::Rc;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use postgres::types::{ToSql, Type};
use r2d2_postgres::PostgresConnectionManager;

/// Which database a registry lives in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// One SQLite file (or memory): the zero-install default.
    Sqlite,
    /// A PostgreSQL server shared by many stations.
    Postgres,
}

impl Dialect {
    /// The backend's name, for messages.
    pub fn name(self) -> &'static str {
        match self {
            Dialect::Sqlite => "SQLite",
            Dialect::Postgres => "PostgreSQL",
        }
    }
}

type PgManager = PostgresConnectionManager<postgres::NoTls>;
type PgPooled = r2d2::PooledConnection<PgManager>;

/// A database failure, naming its backend.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// SQLite failed.
    #[error("SQLite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// The PostgreSQL server refused or failed a statement.
    #[error("PostgreSQL: {}", pg_message(.0))]
    Postgres(postgres::Error),
    /// The PostgreSQL server cannot be reached (down, network, wrong address), or the
    /// connection to it was lost mid-way.
    #[error(
        "cannot reach the registry's PostgreSQL server {server}: {cause}. Check that the database \
         server is running and that this station's network reaches it, then run the command \
         again; the step under way was not recorded"
    )]
    Unreachable {
        /// `host:port/database` (no password).
        server: String,
        /// What the driver said.
        cause: String,
    },
    /// A query that must return a row returned none.
    #[error("the query returned no row")]
    NoRows,
    /// A column of an unexpected type or value.
    #[error("column {column}: {message}")]
    Column {
        /// The column's name.
        column: String,
        /// What is wrong.
        message: String,
    },
    /// A PostgreSQL registry address that cannot be used.
    #[error("PostgreSQL registry address {url}: {message}")]
    Address {
        /// The address, without its password.
        url: String,
        /// What is wrong.
        message: String,
    },
}

/// Result of database calls.
pub type DbResult<T> = std::result::Result<T, DbError>;

fn pg_message(e: &postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) if *db.code() == postgres::error::SqlState::LOCK_NOT_AVAILABLE => format!(
            "{}: another station's change has held the registry longer than the lock timeout; \
             run the command again",
            db.message()
        ),
        Some(db) => {
            let mut s = db.message().to_owned();
            if let Some(d) = db.detail() {
                s.push_str(&format!(" ({d})"));
            }
            if let Some(h) = db.hint() {
                s.push_str(&format!("; {h}"));
            }
            s
        }
        None => e.to_string(),
    }
}

impl DbError {
    /// The SQLSTATE of a PostgreSQL error.
    pub fn sqlstate(&self) -> Option<&str> {
        match self {
            DbError::Postgres(e) => e.code().map(|c| c.code()),
            _ => None,
        }
    }

    fn from_pg(e: postgres::Error, server: &str) -> DbError {
        // No server answer at all (closed, I/O): the server is gone, not the statement wrong.
        if e.as_db_error().is_none() {
            let mut cause = e.to_string();
            let mut source = std::error::Error::source(&e);
            while let Some(s) = source {
                cause.push_str(&format!(": {s}"));
                source = s.source();
            }
            return DbError::Unreachable {
                server: server.to_owned(),
                cause,
            };
        }
        // Server shutting down / connection failures reported by the server itself.
        if let Some(code) = e.code() {
            let c = code.code();
            if c.starts_with("08") || c == "57P01" || c == "57P02" || c == "57P03" {
                return DbError::Unreachable {
                    server: server.to_owned(),
                    cause: pg_message(&e),
                };
            }
        }
        DbError::Postgres(e)
    }
}

/// A value bound to a statement or read from a row.
#[derive(Debug, Clone, PartialEq)]
pub enum Val {
    /// NULL.
    Null,
    /// An integer.
    Int(i64),
    /// Text.
    Text(String),
    /// Bytes (BLOB / BYTEA).
    Bytes(Vec<u8>),
}

/// A Rust value that can be bound as a statement parameter.
pub trait ToVal {
    /// The value.
    fn to_val(&self) -> Val;
}

macro_rules! int_to_val {
    ($($t:ty),*) => {$(
        impl ToVal for $t {
            fn to_val(&self) -> Val {
                Val::Int(i64::try_from(*self).unwrap_or(i64::MAX))
            }
        }
    )*};
}
int_to_val!(i64, i32, u32, u16, u8, u64, usize);

impl ToVal for bool {
    fn to_val(&self) -> Val {
        Val::Int(i64::from(*self))
    }
}
impl ToVal for str {
    fn to_val(&self) -> Val {
        Val::Text(self.to_owned())
    }
}
impl ToVal for String {
    fn to_val(&self) -> Val {
        Val::Text(self.clone())
    }
}
impl ToVal for [u8] {
    fn to_val(&self) -> Val {
        Val::Bytes(self.to_vec())
    }
}
impl ToVal for Vec<u8> {
    fn to_val(&self) -> Val {
        Val::Bytes(self.clone())
    }
}
impl ToVal for Val {
    fn to_val(&self) -> Val {
        self.clone()
    }
}
impl<T: ToVal + ?Sized> ToVal for &T {
    fn to_val(&self) -> Val {
        (**self).to_val()
    }
}
impl<T: ToVal> ToVal for Option<T> {
    fn to_val(&self) -> Val {
        self.as_ref().map_or(Val::Null, ToVal::to_val)
    }
}

/// The parameters of a statement: `[]`, an array of one type, or `params![…]`.
pub trait Params {
    /// The values.
    fn vals(self) -> Vec<Val>;
}

impl Params for [&dyn ToVal; 0] {
    fn vals(self) -> Vec<Val> {
        Vec::new()
    }
}
impl Params for &[&dyn ToVal] {
    fn vals(self) -> Vec<Val> {
        self.iter().map(|v| v.to_val()).collect()
    }
}
impl Params for Vec<Val> {
    fn vals(self) -> Vec<Val> {
        self
    }
}
macro_rules! array_params {
    ($($n:literal),*) => {$(
        impl<T: ToVal> Params for [T; $n] {
            fn vals(self) -> Vec<Val> {
                self.iter().map(ToVal::to_val).collect()
            }
        }
    )*};
}
array_params!(1, 2, 3, 4, 5, 6, 7, 8);

/// Mixed-type parameters: `params![a, b, c]`.
macro_rules! params {
    () => { &[] as &[&dyn $crate::registry::db::ToVal] };
    ($($p:expr),+ $(,)?) => { &[$(&$p as &dyn $crate::registry::db::ToVal),+] as &[&dyn $crate::registry::db::ToVal] };
}
pub(crate) use params;

/// The values of an iterator as parameters.
pub fn params_from_iter<I>(iter: I) -> Vec<Val>
where
    I: IntoIterator,
    I::Item: ToVal,
{
    iter.into_iter().map(|v| v.to_val()).collect()
}

/// A column value read as a Rust type.
pub trait FromVal: Sized {
    /// Converts; the error says why not.
    fn from_val(v: &Val) -> Result<Self, String>;
}

macro_rules! int_from_val {
    ($($t:ty),*) => {$(
        impl FromVal for $t {
            fn from_val(v: &Val) -> Result<Self, String> {
                match v {
                    Val::Int(i) => <$t>::try_from(*i).map_err(|e| format!("{i}: {e}")),
                    other => Err(format!("expected an integer, found {other:?}")),
                }
            }
        }
    )*};
}
int_from_val!(i64, i32, u32, u16, u8, u64, usize);

impl FromVal for bool {
    fn from_val(v: &Val) -> Result<Self, String> {
        i64::from_val(v).map(|i| i != 0)
    }
}
impl FromVal for String {
    fn from_val(v: &Val) -> Result<Self, String> {
        match v {
            Val::Text(s) => Ok(s.clone()),
            other => Err(format!("expected text, found {other:?}")),
        }
    }
}
impl FromVal for Vec<u8> {
    fn from_val(v: &Val) -> Result<Self, String> {
        match v {
            Val::Bytes(b) => Ok(b.clone()),
            Val::Text(s) => Ok(s.as_bytes().to_vec()),
            other => Err(format!("expected bytes, found {other:?}")),
        }
    }
}
impl<T: FromVal> FromVal for Option<T> {
    fn from_val(v: &Val) -> Result<Self, String> {
        match v {
            Val::Null => Ok(None),
            v => T::from_val(v).map(Some),
        }
    }
}

/// One result row, its values read out of the driver.
#[derive(Debug, Clone)]
pub struct Row {
    names: Rc<[String]>,
    vals: Vec<Val>,
}

impl Row {
    /// Column `i` as `T`.
    pub fn get<T: FromVal>(&self, i: usize) -> DbResult<T> {
        let v = self.vals.get(i).ok_or_else(|| DbError::Column {
            column: format!("#{i}"),
            message: "no such column".into(),
        })?;
        T::from_val(v).map_err(|message| DbError::Column {
            column: self
                .names
                .get(i)
                .cloned()
                .unwrap_or_else(|| format!("#{i}")),
            message,
        })
    }

    /// Column `i` as it is.
    pub fn get_ref(&self, i: usize) -> Option<&Val> {
        self.vals.get(i)
    }

    /// The number of columns.
    pub fn column_count(&self) -> usize {
        self.vals.len()
    }

    /// The name of column `i`.
    pub fn column_name(&self, i: usize) -> &str {
        self.names.get(i).map_or("", String::as_str)
    }
}

/// `.optional()` on a [`Conn::query_row`] result: no row is `None`.
pub trait OptionalExtension<T> {
    /// `Ok(None)` for [`DbError::NoRows`].
    fn optional(self) -> DbResult<Option<T>>;
}

impl<T> OptionalExtension<T> for DbResult<T> {
    fn optional(self) -> DbResult<Option<T>> {
        match self {
            Ok(v) => Ok(Some(v)),
            Err(DbError::NoRows) => Ok(None),
            Err(e) => Err(e),
        }
    }
}

impl rusqlite::ToSql for Val {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        use rusqlite::types::{ToSqlOutput, ValueRef};
        Ok(ToSqlOutput::Borrowed(match self {
            Val::Null => ValueRef::Null,
            Val::Int(i) => ValueRef::Integer(*i),
            Val::Text(s) => ValueRef::Text(s.as_bytes()),
            Val::Bytes(b) => ValueRef::Blob(b),
        }))
    }
}

/// `?N` placeholders as PostgreSQL's `$N` (outside quoted text).
fn pg_sql(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len());
    let mut quote: Option<char> = None;
    for c in sql.chars() {
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => {}
            None if c == '\'' || c == '"' => quote = Some(c),
            None if c == '?' => {
                out.push('$');
                continue;
            }
            None => {}
        }
        out.push(c);
    }
    out
}

/// A PostgreSQL parameter of the type the server inferred for it.
fn pg_param(v: &Val, ty: &Type) -> DbResult<Box<dyn ToSql + Sync>> {
    let bad = |what: &str| DbError::Column {
        column: format!("parameter of type {ty}"),
        message: format!("cannot bind {what}"),
    };
    Ok(match v {
        Val::Null => match *ty {
            Type::INT8 => Box::new(None::<i64>),
            Type::INT4 => Box::new(None::<i32>),
            Type::INT2 => Box::new(None::<i16>),
            Type::BOOL => Box::new(None::<bool>),
            Type::BYTEA => Box::new(None::<Vec<u8>>),
            _ => Box::new(None::<String>),
        },
        Val::Int(i) => match *ty {
            Type::INT8 => Box::new(*i),
            Type::INT4 => Box::new(i32::try_from(*i).map_err(|_| bad("a large integer"))?),
            Type::INT2 => Box::new(i16::try_from(*i).map_err(|_| bad("a large integer"))?),
            Type::BOOL => Box::new(*i != 0),
            Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::UNKNOWN => Box::new(i.to_string()),
            _ => return Err(bad("an integer")),
        },
        Val::Text(s) => Box::new(s.clone()),
        Val::Bytes(b) => Box::new(b.clone()),
    })
}

fn pg_row(row: &postgres::Row, names: &Rc<[String]>) -> DbResult<Row> {
    let mut vals = Vec::with_capacity(row.len());
    for (i, col) in row.columns().iter().enumerate() {
        let bad = |e: postgres::Error| DbError::Column {
            column: col.name().to_owned(),
            message: e.to_string(),
        };
        let v = match *col.type_() {
            Type::INT8 => row.try_get::<_, Option<i64>>(i).map_err(bad)?.map(Val::Int),
            Type::INT4 => row
                .try_get::<_, Option<i32>>(i)
                .map_err(bad)?
                .map(|n| Val::Int(n.into())),
            Type::INT2 => row
                .try_get::<_, Option<i16>>(i)
                .map_err(bad)?
                .map(|n| Val::Int(n.into())),
            Type::BOOL => row
                .try_get::<_, Option<bool>>(i)
                .map_err(bad)?
                .map(|b| Val::Int(b.into())),
            Type::BYTEA => row
                .try_get::<_, Option<Vec<u8>>>(i)
                .map_err(bad)?
                .map(Val::Bytes),
            Type::VOID => None,
            Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME | Type::UNKNOWN => row
                .try_get::<_, Option<String>>(i)
                .map_err(bad)?
                .map(Val::Text),
            ref other => {
                return Err(DbError::Column {
                    column: col.name().to_owned(),
                    message: format!("type {other} is not read by the registry (cast it)"),
                })
            }
        };
        vals.push(v.unwrap_or(Val::Null));
    }
    Ok(Row {
        names: names.clone(),
        vals,
    })
}

/// A connection: SQLite's (borrowed from the registry) or one PostgreSQL connection taken from
/// the registry's pool for the length of a transaction or a read.
pub enum Conn<'a> {
    /// SQLite.
    Sqlite(&'a rusqlite::Connection),
    /// PostgreSQL.
    Postgres {
        /// The pooled client.
        client: Box<RefCell<PgPooled>>,
        /// `host:port/database`, for messages.
        server: Arc<str>,
    },
}

impl fmt::Debug for Conn<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Conn({})", self.dialect().name())
    }
}

impl<'a> Conn<'a> {
    /// The backend.
    pub fn dialect(&self) -> Dialect {
        match self {
            Conn::Sqlite(_) => Dialect::Sqlite,
            Conn::Postgres { .. } => Dialect::Postgres,
        }
    }

    /// The SQLite connection, for the SQLite-only parts (hooks, pragmas, tests).
    pub fn sqlite(&self) -> Option<&rusqlite::Connection> {
        match self {
            Conn::Sqlite(c) => Some(c),
            Conn::Postgres { .. } => None,
        }
    }

    /// Runs several statements (no parameters, no results).
    pub fn execute_batch(&self, sql: &str) -> DbResult<()> {
        match self {
            Conn::Sqlite(c) => Ok(c.execute_batch(sql)?),
            Conn::Postgres { client, server } => client
                .borrow_mut()
                .batch_execute(sql)
                .map_err(|e| DbError::from_pg(e, server)),
        }
    }

    /// Runs one statement; returns the number of rows it changed.
    pub fn execute(&self, sql: &str, params: impl Params) -> DbResult<usize> {
        let vals = params.vals();
        match self {
            Conn::Sqlite(c) => {
                let mut st = c.prepare_cached(sql)?;
                Ok(st.execute(rusqlite::params_from_iter(vals.iter()))?)
            }
            Conn::Postgres { client, server } => {
                let mut client = client.borrow_mut();
                let pg = |e| DbError::from_pg(e, server);
                let sql = pg_sql(sql);
                let args = pg_typed_args(&mut client, &sql, &vals, server)?;
                let refs: Vec<(&(dyn ToSql + Sync), Type)> =
                    args.iter().map(|(b, t)| (b.as_ref(), t.clone())).collect();
                let n = client.execute_typed(&sql, &refs).map_err(pg)?;
                Ok(usize::try_from(n).unwrap_or(usize::MAX))
            }
        }
    }

    /// Every row of a query, each mapped by `f`.
    pub fn query_all<T>(
        &self,
        sql: &str,
        params: impl Params,
        mut f: impl FnMut(&Row) -> DbResult<T>,
    ) -> DbResult<Vec<T>> {
        let vals = params.vals();
        match self {
            Conn::Sqlite(c) => {
                let mut st = c.prepare_cached(sql)?;
                let mut rows = st.query(rusqlite::params_from_iter(vals.iter()))?;
                let mut out = Vec::new();
                // The columns as of this run (a cached statement re-prepared after a schema
                // change may have more than when it was first prepared).
                let mut names: Option<Rc<[String]>> = None;
                while let Some(r) = rows.next()? {
                    let names = names
                        .get_or_insert_with(|| {
                            r.as_ref().column_names().map(str::to_owned).collect()
                        })
                        .clone();
                    let n = names.len();
                    let mut vs = Vec::with_capacity(n);
                    for i in 0..n {
                        use rusqlite::types::ValueRef;
                        vs.push(match r.get_ref(i)? {
                            ValueRef::Null => Val::Null,
                            ValueRef::Integer(i) => Val::Int(i),
                            ValueRef::Real(x) => Val::Text(x.to_string()),
                            ValueRef::Text(t) => Val::Text(String::from_utf8_lossy(t).into_owned()),
                            ValueRef::Blob(b) => Val::Bytes(b.to_vec()),
                        });
                    }
                    out.push(f(&Row {
                        names: names.clone(),
                        vals: vs,
                    })?);
                }
                Ok(out)
            }
            Conn::Postgres { client, server } => {
                let mut client = client.borrow_mut();
                let pg = |e| DbError::from_pg(e, server);
                let sql = pg_sql(sql);
                let args = pg_typed_args(&mut client, &sql, &vals, server)?;
                let refs: Vec<(&(dyn ToSql + Sync), Type)> =
                    args.iter().map(|(b, t)| (b.as_ref(), t.clone())).collect();
                let rows = client.query_typed(&sql, &refs).map_err(pg)?;
                let mut out = Vec::with_capacity(rows.len());
                let mut names: Option<Rc<[String]>> = None;
                for r in &rows {
                    let names = names
                        .get_or_insert_with(|| {
                            r.columns().iter().map(|c| c.name().to_owned()).collect()
                        })
                        .clone();
                    out.push(f(&pg_row(r, &names)?)?);
                }
                Ok(out)
            }
        }
    }

    /// A statement to run with [`Stmt::query_map`].
    pub fn prepare<'c>(&'c self, sql: &str) -> DbResult<Stmt<'c, 'a>> {
        Ok(Stmt {
            conn: self,
            sql: sql.to_owned(),
        })
    }

    /// The first row of a query, mapped by `f`; [`DbError::NoRows`] when there is none (see
    /// [`OptionalExtension::optional`]).
    pub fn query_row<T>(
        &self,
        sql: &str,
        params: impl Params,
        f: impl FnOnce(&Row) -> DbResult<T>,
    ) -> DbResult<T> {
        let rows = self.query_all(sql, params, |r| Ok(r.clone()))?;
        match rows.first() {
            Some(r) => f(r),
            None => Err(DbError::NoRows),
        }
    }
}

/// A statement of a connection (the shape of rusqlite's `prepare` + `query_map`).
pub struct Stmt<'c, 'a> {
    conn: &'c Conn<'a>,
    sql: String,
}

impl Stmt<'_, '_> {
    /// Every row, mapped by `f`.
    pub fn query_map<T>(
        &mut self,
        params: impl Params,
        mut f: impl FnMut(&Row) -> DbResult<T>,
    ) -> DbResult<std::vec::IntoIter<DbResult<T>>> {
        let rows = self.conn.query_all(&self.sql, params, |r| Ok(f(r)))?;
        Ok(rows.into_iter())
    }
}

/// The parameter types the server infers for each statement text, learnt once per process (a
/// `prepare` the first time): later runs of the statement then take one round trip
/// (`query_typed`: parse, bind and execute together) instead of three.
fn param_types_cache() -> &'static Mutex<HashMap<String, Vec<Type>>> {
    static CACHE: OnceLock<Mutex<HashMap<String, Vec<Type>>>> = OnceLock::new();
    CACHE.get_or_init(|| Mutex::new(HashMap::new()))
}

/// The values of a statement, each as the type the server wants for its parameter.
fn pg_typed_args(
    client: &mut postgres::Client,
    sql: &str,
    vals: &[Val],
    server: &str,
) -> DbResult<Vec<(Box<dyn ToSql + Sync>, Type)>> {
    let cached = param_types_cache()
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .get(sql)
        .cloned();
    let types = match cached {
        Some(t) => t,
        None => {
            let st = client
                .prepare(sql)
                .map_err(|e| DbError::from_pg(e, server))?;
            let t = st.params().to_vec();
            param_types_cache()
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(sql.to_owned(), t.clone());
            t
        }
    };
    if types.len() != vals.len() {
        return Err(DbError::Column {
            column: "(parameters)".into(),
            message: format!(
                "the statement takes {} parameters, {} given",
                types.len(),
                vals.len()
            ),
        });
    }
    types
        .into_iter()
        .zip(vals)
        .map(|(ty, v)| Ok((pg_param(v, &ty)?, ty)))
        .collect()
}

/// How a transaction takes its locks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Begin {
    /// A registry write: SQLite's write lock at once (`BEGIN IMMEDIATE`); on PostgreSQL a
    /// READ COMMITTED transaction (the registry then locks the chain head).
    Write,
    /// A consistent read of several statements (verification): SQLite `BEGIN` (a WAL
    /// snapshot), PostgreSQL REPEATABLE READ, READ ONLY.
    Read,
    /// A schema migration: SQLite `BEGIN EXCLUSIVE`; on PostgreSQL the registry's advisory lock,
    /// so that two stations opening an old database migrate it once.
    Migration,
}

/// The advisory lock key of schema migrations on PostgreSQL ("citizenc" in ASCII).
pub const MIGRATION_LOCK: i64 = 0x6369_7469_7a65_6e63;

/// A transaction: rolled back when dropped without [`commit`](Tx::commit).
pub struct Tx<'a> {
    conn: Conn<'a>,
    open: bool,
    in_tx: Option<&'a Cell<bool>>,
    station: Option<String>,
}

impl<'a> std::ops::Deref for Tx<'a> {
    type Target = Conn<'a>;
    fn deref(&self) -> &Conn<'a> {
        &self.conn
    }
}

impl<'a> Tx<'a> {
    /// Begins a transaction on `conn`. `in_tx` is set while it is open (the registry refuses
    /// reads outside it meanwhile: on PostgreSQL they would not see its changes).
    pub fn begin(conn: Conn<'a>, how: Begin, in_tx: Option<&'a Cell<bool>>) -> DbResult<Tx<'a>> {
        match (&conn, how) {
            (Conn::Sqlite(c), Begin::Write) => c.execute_batch("BEGIN IMMEDIATE")?,
            (Conn::Sqlite(c), Begin::Migration) => c.execute_batch("BEGIN EXCLUSIVE")?,
            (Conn::Sqlite(c), Begin::Read) => c.execute_batch("BEGIN")?,
            (Conn::Postgres { .. }, Begin::Read) => {
                conn.execute_batch("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")?
            }
            (Conn::Postgres { .. }, Begin::Write) => {
                conn.execute_batch("BEGIN ISOLATION LEVEL READ COMMITTED")?
            }
            (Conn::Postgres { .. }, Begin::Migration) => {
                conn.execute_batch("BEGIN ISOLATION LEVEL READ COMMITTED")?;
                let tx = Tx {
                    conn,
                    open: true,
                    in_tx,
                    station: None,
                };
                tx.query_row("SELECT pg_advisory_xact_lock(?1)", [MIGRATION_LOCK], |_| {
                    Ok(())
                })?;
                if let Some(f) = in_tx {
                    f.set(true);
                }
                return Ok(tx);
            }
        }
        if let Some(f) = in_tx {
            f.set(true);
        }
        Ok(Tx {
            conn,
            open: true,
            in_tx,
            station: None,
        })
    }

    /// Records `station` in the audit records this transaction appends.
    pub fn set_station(&mut self, station: &str) {
        self.station = Some(station.to_owned());
    }

    /// The station of this transaction's audit records.
    pub fn station(&self) -> Option<&str> {
        self.station.as_deref()
    }

    /// Commits.
    pub fn commit(mut self) -> DbResult<()> {
        self.open = false;
        if let Some(f) = self.in_tx {
            f.set(false);
        }
        let r = self.conn.execute_batch("COMMIT");
        if r.is_err() {
            // A refused commit (SQLite's commit hook, a PostgreSQL deferred trigger) ends the
            // transaction; make sure nothing stays open on this connection.
            let _ = self.conn.execute_batch("ROLLBACK");
        }
        r
    }
}

impl Drop for Tx<'_> {
    fn drop(&mut self) {
        if let Some(f) = self.in_tx {
            f.set(false);
        }
        if self.open {
            let _ = self.conn.execute_batch("ROLLBACK");
        }
    }
}

/// The registry's database: one SQLite connection, or a pool of PostgreSQL connections.
pub enum Db {
    /// SQLite.
    Sqlite(rusqlite::Connection),
    /// PostgreSQL.
    Postgres {
        /// The pool.
        pool: r2d2::Pool<PgManager>,
        /// `host:port/database`, for messages.
        server: Arc<str>,
    },
}

/// What every new PostgreSQL connection of the registry runs first: the session's list of rows
/// touched since the last audit record (see `chain.rs`).
#[derive(Debug)]
struct SessionSetup;

impl r2d2::CustomizeConnection<postgres::Client, postgres::Error> for SessionSetup {
    fn on_acquire(&self, client: &mut postgres::Client) -> Result<(), postgres::Error> {
        client.batch_execute(super::chain::PG_SESSION_SETUP)
    }
}

/// The part of a PostgreSQL address that may be shown: `host:port/database`.
pub fn pg_server_name(config: &postgres::Config) -> String {
    let host = config
        .get_hosts()
        .first()
        .map(|h| match h {
            postgres::config::Host::Tcp(s) => s.clone(),
            postgres::config::Host::Unix(p) => p.display().to_string(),
        })
        .unwrap_or_else(|| "localhost".into());
    let port = config.get_ports().first().copied().unwrap_or(5432);
    let db = config
        .get_dbname()
        .map(str::to_owned)
        .or_else(|| config.get_user().map(str::to_owned))
        .unwrap_or_default();
    format!("{host}:{port}/{db}")
}

/// An address with its password (if any) replaced by `***`.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let userinfo = &url[s + 3..at];
            match userinfo.find(':') {
                Some(c) => format!("{}{}:***{}", &url[..s + 3], &userinfo[..c], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

impl Db {
    /// Opens a pool on the PostgreSQL server at `url` (`postgres://user@host:port/db`) and
    /// checks that the server answers.
    pub fn connect_postgres(url: &str, max_connections: u32) -> DbResult<Db> {
        let mut config: postgres::Config = url.parse().map_err(|e| DbError::Address {
            url: redact_url(url),
            message: format!("{e}"),
        })?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(Duration::from_secs(5));
        }
        config.application_name("citizencard");
        let server: Arc<str> = pg_server_name(&config).into();
        // One connection at once, outside the pool: an unreachable server is reported at open
        // and at once (the pool would retry until its timeout).
        config
            .connect(postgres::NoTls)
            .map_err(|e| DbError::from_pg(e, &server))?;
        let pool = r2d2::Pool::builder()
            .max_size(max_connections.max(1))
            .min_idle(Some(0))
            .connection_timeout(Duration::from_secs(5))
            // One empty round trip per checkout: a connection a server restart broke is
            // replaced by a fresh one instead of failing the next statement.
            .test_on_check_out(true)
            .connection_customizer(Box::new(SessionSetup))
            .build_unchecked(PostgresConnectionManager::new(config, postgres::NoTls));
        Ok(Db::Postgres { pool, server })
    }

    /// Like [`connect_postgres`](Self::connect_postgres), with the pool of this address shared
    /// by every handle of the process that asks for it (a console opens a registry handle per
    /// request; they then share up to eight connections instead of connecting each time).
    pub fn connect_postgres_shared(url: &str) -> DbResult<Db> {
        type Shared = HashMap<String, (r2d2::Pool<PgManager>, Arc<str>)>;
        static POOLS: OnceLock<Mutex<Shared>> = OnceLock::new();
        let pools = POOLS.get_or_init(|| Mutex::new(HashMap::new()));
        let found = pools
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(url)
            .cloned();
        if let Some((pool, server)) = found {
            return Ok(Db::Postgres { pool, server });
        }
        let db = Db::connect_postgres(url, 8)?;
        if let Db::Postgres { pool, server } = &db {
            pools
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(url.to_owned(), (pool.clone(), server.clone()));
        }
        Ok(db)
    }

    /// The backend.
    pub fn dialect(&self) -> Dialect {
        match self {
            Db::Sqlite(_) => Dialect::Sqlite,
            Db::Postgres { .. } => Dialect::Postgres,
        }
    }

    /// A connection for a read or a transaction.
    pub fn conn(&self) -> DbResult<Conn<'_>> {
        match self {
            Db::Sqlite(c) => Ok(Conn::Sqlite(c)),
            Db::Postgres { pool, server } => {
                let client = pool.get().map_err(|e| DbError::Unreachable {
                    server: server.to_string(),
                    cause: e.to_string(),
                })?;
                Ok(Conn::Postgres {
                    client: Box::new(RefCell::new(client)),
                    server: server.clone(),
                })
            }
        }
    }

    /// The SQLite connection, when that is the backend.
    pub fn sqlite(&self) -> Option<&rusqlite::Connection> {
        match self {
            Db::Sqlite(c) => Some(c),
            Db::Postgres { .. } => None,
        }
    }

    /// The SQLite connection, mutable (migrations, hooks).
    pub fn sqlite_mut(&mut self) -> Option<&mut rusqlite::Connection> {
        match self {
            Db::Sqlite(c) => Some(c),
            Db::Postgres { .. } => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_become_dollars_outside_quotes() {
        assert_eq!(
            pg_sql("SELECT '?1', x FROM t WHERE a = ?1 AND b = ?12"),
            "SELECT '?1', x FROM t WHERE a = $1 AND b = $12"
        );
    }

    #[test]
    fn passwords_are_not_shown() {
        assert_eq!(
            redact_url("postgres://cc:secret@db.example:5432/reg"),
            "postgres://cc:***@db.example:5432/reg"
        );
        assert_eq!(redact_url("postgres://cc@db/reg"), "postgres://cc@db/reg");
    }
}
