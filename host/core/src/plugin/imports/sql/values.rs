//! WIT `sql-value`s in and out of PostgreSQL.
//!
//! Bound parameters are sent in text format, so the server parses each one
//! as whatever type it inferred for its `$n` (an `int` parameter can fill an
//! `int4` or `oid` column, text can fill a `name`). Result columns of the
//! common scalar types are decoded to their WIT case; any other type is an
//! error asking the plugin to cast it to text, never a guess.

use std::error::Error;

use bytes::BytesMut;
use tokio_postgres::types::{Format, IsNull, ToSql, Type, to_sql_checked};
use tokio_postgres::{Row, SimpleQueryMessage};

use super::SqlValue;

/// A parameter as tokio-postgres binds it.
#[derive(Debug)]
pub struct Param<'a>(pub &'a SqlValue);

impl ToSql for Param<'_> {
    fn to_sql(&self, _ty: &Type, out: &mut BytesMut) -> Result<IsNull, Box<dyn Error + Sync + Send>> {
        let text = match self.0 {
            SqlValue::Null => return Ok(IsNull::Yes),
            SqlValue::Boolean(b) => (if *b { "t" } else { "f" }).to_owned(),
            SqlValue::Int(n) => n.to_string(),
            SqlValue::Float(f) if f.is_nan() => "NaN".to_owned(),
            SqlValue::Float(f) if f.is_infinite() => (if *f > 0.0 { "Infinity" } else { "-Infinity" }).to_owned(),
            SqlValue::Float(f) => format!("{f:?}"),
            SqlValue::Text(s) => {
                if s.contains('\0') {
                    return Err("text contains a NUL character, which PostgreSQL cannot store".into());
                }
                out.extend_from_slice(s.as_bytes());
                return Ok(IsNull::No);
            }
        };
        out.extend_from_slice(text.as_bytes());
        Ok(IsNull::No)
    }

    fn accepts(_ty: &Type) -> bool {
        // The server parses the text for whatever type it inferred.
        true
    }

    fn encode_format(&self, _ty: &Type) -> Format {
        Format::Text
    }

    to_sql_checked!();
}

/// One row of a prepared query as WIT values.
pub fn decode_row(row: &Row) -> Result<Vec<SqlValue>, String> {
    (0..row.len()).map(|i| decode_column(row, i)).collect()
}

fn decode_column(row: &Row, i: usize) -> Result<SqlValue, String> {
    let column = &row.columns()[i];
    let ty = column.type_();
    let get_err = |e: tokio_postgres::Error| format!("column `{}`: {e}", column.name());
    let value = match *ty {
        Type::BOOL => row.try_get::<_, Option<bool>>(i).map_err(get_err)?.map(SqlValue::Boolean),
        Type::INT2 => row.try_get::<_, Option<i16>>(i).map_err(get_err)?.map(|n| SqlValue::Int(n.into())),
        Type::INT4 => row.try_get::<_, Option<i32>>(i).map_err(get_err)?.map(|n| SqlValue::Int(n.into())),
        Type::INT8 => row.try_get::<_, Option<i64>>(i).map_err(get_err)?.map(SqlValue::Int),
        Type::OID => row.try_get::<_, Option<u32>>(i).map_err(get_err)?.map(|n| SqlValue::Int(n.into())),
        Type::FLOAT4 => row.try_get::<_, Option<f32>>(i).map_err(get_err)?.map(|f| SqlValue::Float(f.into())),
        Type::FLOAT8 => row.try_get::<_, Option<f64>>(i).map_err(get_err)?.map(SqlValue::Float),
        Type::TEXT | Type::VARCHAR | Type::NAME | Type::BPCHAR | Type::UNKNOWN => {
            row.try_get::<_, Option<String>>(i).map_err(get_err)?.map(SqlValue::Text)
        }
        _ => {
            return Err(format!(
                "column `{}` has type {ty}, which sql cannot return; cast it to text (`::text`) in the query",
                column.name()
            ));
        }
    };
    Ok(value.unwrap_or(SqlValue::Null))
}

/// The rows of a simple-protocol result, every value as text.
pub fn simple_rows(messages: &[SimpleQueryMessage]) -> Vec<Vec<SqlValue>> {
    messages
        .iter()
        .filter_map(|m| match m {
            SimpleQueryMessage::Row(row) => Some(
                (0..row.len()).map(|i| row.get(i).map_or(SqlValue::Null, |s| SqlValue::Text(s.to_owned()))).collect(),
            ),
            _ => None,
        })
        .collect()
}

/// The rows affected by the last command of a simple-protocol result.
pub fn simple_count(messages: &[SimpleQueryMessage]) -> u64 {
    messages
        .iter()
        .filter_map(|m| match m {
            SimpleQueryMessage::CommandComplete(n) => Some(*n),
            _ => None,
        })
        .next_back()
        .unwrap_or(0)
}
