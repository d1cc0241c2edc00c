//! SQL values and how Rust types map to them.
//!
//! | Rust                                   | SQLite              | read back as                 |
//! |----------------------------------------|---------------------|------------------------------|
//! | `i64`, `i32`, `i16`, `i8`, `u32`, `u16`, `u8` | INTEGER       | the same type (range-checked) |
//! | `u64`, `usize` (parameters: range-checked)     | INTEGER       | the same type (range-checked) |
//! | `bool`                                 | INTEGER 1 / 0       | `bool` (0 is false)          |
//! | `f64`, `f32`                           | REAL                | `f64`                        |
//! | `String`, `&str`                       | TEXT                | `String`                     |
//! | `Vec<u8>`, `&[u8]`                     | BLOB                | `Vec<u8>`                    |
//! | `Option<T>` (`None`)                   | NULL                | `Option<T>`                  |
//!
//! Unlike Cloudflare's JavaScript API, integers stay 64-bit integers (no loss of precision
//! above 2^53) and booleans are bound as 1 and 0 (JavaScript binds them as the text
//! `'true'` / `'false'`).

use rusqlite::ToSql;
use rusqlite::types::{ToSqlOutput, ValueRef};

/// One SQLite value.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum SqlValue {
    /// NULL.
    Null,
    /// A 64-bit signed integer.
    Integer(i64),
    /// A 64-bit float.
    Real(f64),
    /// UTF-8 text.
    Text(String),
    /// Bytes.
    Blob(Vec<u8>),
}

impl SqlValue {
    /// Bytes of a string or BLOB value; 0 for the others.
    pub(crate) fn byte_len(&self) -> usize {
        match self {
            SqlValue::Text(text) => text.len(),
            SqlValue::Blob(bytes) => bytes.len(),
            _ => 0,
        }
    }

    /// The SQLite type name of the value.
    pub fn type_name(&self) -> &'static str {
        match self {
            SqlValue::Null => "NULL",
            SqlValue::Integer(_) => "INTEGER",
            SqlValue::Real(_) => "REAL",
            SqlValue::Text(_) => "TEXT",
            SqlValue::Blob(_) => "BLOB",
        }
    }

    pub(crate) fn to_rmpv(&self) -> rmpv::Value {
        match self {
            SqlValue::Null => rmpv::Value::Nil,
            SqlValue::Integer(i) => rmpv::Value::from(*i),
            SqlValue::Real(f) => rmpv::Value::F64(*f),
            SqlValue::Text(t) => rmpv::Value::from(t.as_str()),
            SqlValue::Blob(b) => rmpv::Value::Binary(b.clone()),
        }
    }
}

impl ToSql for SqlValue {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(match self {
            SqlValue::Null => ToSqlOutput::Borrowed(ValueRef::Null),
            SqlValue::Integer(i) => ToSqlOutput::Borrowed(ValueRef::Integer(*i)),
            SqlValue::Real(f) => ToSqlOutput::Borrowed(ValueRef::Real(*f)),
            SqlValue::Text(t) => ToSqlOutput::Borrowed(ValueRef::Text(t.as_bytes())),
            SqlValue::Blob(b) => ToSqlOutput::Borrowed(ValueRef::Blob(b)),
        })
    }
}

macro_rules! from_integer {
    ($($t:ty),*) => {$(
        impl From<$t> for SqlValue {
            fn from(value: $t) -> Self {
                SqlValue::Integer(i64::from(value))
            }
        }
    )*};
}
from_integer!(i64, i32, i16, i8, u32, u16, u8, bool);

impl From<f64> for SqlValue {
    fn from(value: f64) -> Self {
        SqlValue::Real(value)
    }
}

impl From<f32> for SqlValue {
    fn from(value: f32) -> Self {
        SqlValue::Real(f64::from(value))
    }
}

impl From<String> for SqlValue {
    fn from(value: String) -> Self {
        SqlValue::Text(value)
    }
}

impl From<&str> for SqlValue {
    fn from(value: &str) -> Self {
        SqlValue::Text(value.to_owned())
    }
}

impl From<&String> for SqlValue {
    fn from(value: &String) -> Self {
        SqlValue::Text(value.clone())
    }
}

impl From<Vec<u8>> for SqlValue {
    fn from(value: Vec<u8>) -> Self {
        SqlValue::Blob(value)
    }
}

impl From<&[u8]> for SqlValue {
    fn from(value: &[u8]) -> Self {
        SqlValue::Blob(value.to_vec())
    }
}

impl<T: Into<SqlValue>> From<Option<T>> for SqlValue {
    fn from(value: Option<T>) -> Self {
        value.map_or(SqlValue::Null, Into::into)
    }
}

/// Why a column value does not convert into the type asked for.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ValueError {
    /// The value is of another SQL type.
    #[error("cannot read {found} as {wanted}")]
    Mismatch {
        /// The value's SQL type (`INTEGER`, `REAL`, `TEXT`, `BLOB`, `NULL`).
        found: &'static str,
        /// The Rust type asked for.
        wanted: &'static str,
    },
    /// An integer outside the range of the integer type asked for.
    #[error("{value} does not fit in {wanted}")]
    OutOfRange {
        /// The value.
        value: i64,
        /// The Rust type asked for.
        wanted: &'static str,
    },
    /// A Rust integer too large for SQLite's 64-bit signed INTEGER, bound as a parameter.
    #[error(
        "parameter {value} ({from}) does not fit in SQLite's 64-bit signed INTEGER: store it as TEXT or check its range first"
    )]
    ParameterOutOfRange {
        /// The value, as text.
        value: String,
        /// Its Rust type.
        from: &'static str,
    },
    /// Another reason, from a conversion of your own or from reading a row into a serde type.
    #[error("{0}")]
    Other(String),
}

/// A Rust type a column value converts into (see the module table).
pub trait FromSqlValue: Sized {
    /// Converts `value`, or says why it cannot.
    fn from_sql_value(value: &SqlValue) -> Result<Self, ValueError>;
}

fn mismatch<T>(value: &SqlValue, wanted: &'static str) -> Result<T, ValueError> {
    Err(ValueError::Mismatch {
        found: value.type_name(),
        wanted,
    })
}

macro_rules! into_integer {
    ($($t:ty),*) => {$(
        impl FromSqlValue for $t {
            fn from_sql_value(value: &SqlValue) -> Result<Self, ValueError> {
                match value {
                    SqlValue::Integer(i) => <$t>::try_from(*i).map_err(|_| ValueError::OutOfRange {
                        value: *i,
                        wanted: stringify!($t),
                    }),
                    other => mismatch(other, stringify!($t)),
                }
            }
        }
    )*};
}
into_integer!(i64, i32, i16, i8, u64, u32, u16, u8, usize);

impl FromSqlValue for bool {
    fn from_sql_value(value: &SqlValue) -> Result<Self, ValueError> {
        match value {
            SqlValue::Integer(i) => Ok(*i != 0),
            other => mismatch(other, "bool"),
        }
    }
}

impl FromSqlValue for f64 {
    fn from_sql_value(value: &SqlValue) -> Result<Self, ValueError> {
        match value {
            SqlValue::Real(f) => Ok(*f),
            // SQLite stores integral REAL values of INTEGER-affinity columns as integers.
            SqlValue::Integer(i) => Ok(*i as f64),
            other => mismatch(other, "f64"),
        }
    }
}

impl FromSqlValue for String {
    fn from_sql_value(value: &SqlValue) -> Result<Self, ValueError> {
        match value {
            SqlValue::Text(t) => Ok(t.clone()),
            other => mismatch(other, "String"),
        }
    }
}

impl FromSqlValue for Vec<u8> {
    fn from_sql_value(value: &SqlValue) -> Result<Self, ValueError> {
        match value {
            SqlValue::Blob(b) => Ok(b.clone()),
            other => mismatch(other, "Vec<u8>"),
        }
    }
}

impl FromSqlValue for SqlValue {
    fn from_sql_value(value: &SqlValue) -> Result<Self, ValueError> {
        Ok(value.clone())
    }
}

impl<T: FromSqlValue> FromSqlValue for Option<T> {
    fn from_sql_value(value: &SqlValue) -> Result<Self, ValueError> {
        match value {
            SqlValue::Null => Ok(None),
            other => T::from_sql_value(other).map(Some),
        }
    }
}

/// A Rust value that binds as one SQL parameter: every type of the module table, and `u64`,
/// `usize` and the 128-bit integers, which bind as INTEGER when they fit in SQLite's 64-bit
/// signed integer and fail with [`ValueError::ParameterOutOfRange`] when they do not.
pub trait IntoSqlParam {
    /// The value to bind, or why it cannot be bound.
    fn into_sql_param(self) -> Result<SqlValue, ValueError>;
}

macro_rules! param_via_from {
    ($($t:ty),*) => {$(
        impl IntoSqlParam for $t {
            fn into_sql_param(self) -> Result<SqlValue, ValueError> {
                Ok(SqlValue::from(self))
            }
        }
    )*};
}
param_via_from!(
    i64,
    i32,
    i16,
    i8,
    u32,
    u16,
    u8,
    bool,
    f64,
    f32,
    String,
    Vec<u8>
);

impl IntoSqlParam for &str {
    fn into_sql_param(self) -> Result<SqlValue, ValueError> {
        Ok(SqlValue::from(self))
    }
}

impl IntoSqlParam for &String {
    fn into_sql_param(self) -> Result<SqlValue, ValueError> {
        Ok(SqlValue::from(self))
    }
}

impl IntoSqlParam for &[u8] {
    fn into_sql_param(self) -> Result<SqlValue, ValueError> {
        Ok(SqlValue::from(self))
    }
}

impl IntoSqlParam for SqlValue {
    fn into_sql_param(self) -> Result<SqlValue, ValueError> {
        Ok(self)
    }
}

macro_rules! param_range_checked {
    ($($t:ty),*) => {$(
        impl IntoSqlParam for $t {
            fn into_sql_param(self) -> Result<SqlValue, ValueError> {
                i64::try_from(self)
                    .map(SqlValue::Integer)
                    .map_err(|_| ValueError::ParameterOutOfRange {
                        value: self.to_string(),
                        from: stringify!($t),
                    })
            }
        }
    )*};
}
param_range_checked!(u64, usize, isize, u128, i128);

impl<T: IntoSqlParam> IntoSqlParam for Option<T> {
    fn into_sql_param(self) -> Result<SqlValue, ValueError> {
        self.map_or(Ok(SqlValue::Null), IntoSqlParam::into_sql_param)
    }
}

/// The parameters of a query: `()`, a tuple of values (each an [`IntoSqlParam`]), or a
/// `Vec`/slice/array of [`SqlValue`]s.
///
/// ```
/// use durable_objects::storage::{SqlParams, SqlValue, ValueError};
///
/// let params = (7_u64, "seven", None::<i64>).into_values().unwrap();
/// assert_eq!(params[0], SqlValue::Integer(7));
/// // A u64 above i64::MAX does not fit in an SQLite INTEGER: an error, not a wrap.
/// let too_big = (u64::MAX,).into_values().unwrap_err();
/// assert!(matches!(too_big, ValueError::ParameterOutOfRange { .. }));
/// ```
pub trait SqlParams {
    /// The parameters in order, or the first that cannot be bound.
    fn into_values(self) -> Result<Vec<SqlValue>, ValueError>;
}

impl SqlParams for () {
    fn into_values(self) -> Result<Vec<SqlValue>, ValueError> {
        Ok(Vec::new())
    }
}

impl SqlParams for Vec<SqlValue> {
    fn into_values(self) -> Result<Vec<SqlValue>, ValueError> {
        Ok(self)
    }
}

impl SqlParams for &[SqlValue] {
    fn into_values(self) -> Result<Vec<SqlValue>, ValueError> {
        Ok(self.to_vec())
    }
}

impl<const N: usize> SqlParams for [SqlValue; N] {
    fn into_values(self) -> Result<Vec<SqlValue>, ValueError> {
        Ok(self.into())
    }
}

macro_rules! tuple_params {
    ($($name:ident),+) => {
        impl<$($name: IntoSqlParam),+> SqlParams for ($($name,)+) {
            #[allow(non_snake_case)]
            fn into_values(self) -> Result<Vec<SqlValue>, ValueError> {
                let ($($name,)+) = self;
                Ok(vec![$($name.into_sql_param()?),+])
            }
        }
    };
}
tuple_params!(A);
tuple_params!(A, B);
tuple_params!(A, B, C);
tuple_params!(A, B, C, D);
tuple_params!(A, B, C, D, E);
tuple_params!(A, B, C, D, E, F);
tuple_params!(A, B, C, D, E, F, G);
tuple_params!(A, B, C, D, E, F, G, H);
tuple_params!(A, B, C, D, E, F, G, H, I);
tuple_params!(A, B, C, D, E, F, G, H, I, J);
tuple_params!(A, B, C, D, E, F, G, H, I, J, K);
tuple_params!(A, B, C, D, E, F, G, H, I, J, K, L);
