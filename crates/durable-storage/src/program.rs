//! Compiled user SQL kept between calls: the statements of one `exec` text, in order.
//!
//! A text is compiled statement by statement while it runs (a later statement may name a
//! table an earlier one creates), and the list is cached by the whole text once it ran to
//! its end, so a repeated `exec` of the same text skips SQLite's parser. SQLite recompiles a
//! cached statement by itself when the schema changed since (it was prepared with
//! `sqlite3_prepare_v3`), under the same authorizer.

use std::collections::{HashMap, VecDeque};

use crate::statement::Prepared;

/// Texts cached at most; the oldest is dropped first.
const CAPACITY: usize = 64;

/// Longest text cached: longer texts are compiled on every call (they are rarely repeated,
/// and the cache stays small).
const MAX_CACHED_TEXT: usize = 8 * 1024;

/// The statements of one text.
#[derive(Debug, Default)]
pub(crate) struct Program {
    pub(crate) statements: Vec<Prepared>,
}

/// Programs by their text.
#[derive(Debug, Default)]
pub(crate) struct ProgramCache {
    programs: HashMap<String, Program>,
    order: VecDeque<String>,
}

impl ProgramCache {
    /// Takes the program of `sql` out of the cache (the caller puts it back after use).
    pub(crate) fn take(&mut self, sql: &str) -> Option<Program> {
        let program = self.programs.remove(sql)?;
        if let Some(position) = self.order.iter().position(|text| text == sql) {
            self.order.remove(position);
        }
        Some(program)
    }

    /// Keeps `program` for `sql`, dropping the oldest program past the capacity.
    pub(crate) fn put(&mut self, sql: &str, program: Program) {
        if sql.len() > MAX_CACHED_TEXT || program.statements.is_empty() {
            return;
        }
        if self.programs.insert(sql.to_owned(), program).is_none() {
            self.order.push_back(sql.to_owned());
        }
        while self.order.len() > CAPACITY {
            if let Some(oldest) = self.order.pop_front() {
                self.programs.remove(&oldest);
            }
        }
    }

    /// Finalizes every cached statement (before the connection closes, or to free memory).
    pub(crate) fn clear(&mut self) {
        self.programs.clear();
        self.order.clear();
    }
}
