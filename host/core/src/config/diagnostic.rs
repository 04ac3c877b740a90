//! Config diagnostics: an error message at a place in a file.
//!
//! Spans are byte ranges into the source text; they are turned into 1-based
//! line and column (in characters) only when printed. All problems found in
//! one pass are collected into [`ConfigErrors`], so the operator fixes them
//! all in one go instead of one per run.

use std::fmt;
use std::ops::Range;
use std::sync::Arc;

/// A config file's name (as the operator gave it) and text.
#[derive(Debug)]
pub struct SourceFile {
    pub name: String,
    pub text: String,
}

impl SourceFile {
    /// 1-based line and column of byte offset `at`.
    pub fn position(&self, at: usize) -> (usize, usize) {
        let at = at.min(self.text.len());
        let before = &self.text[..at];
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        let col = self.text[line_start..at].chars().count() + 1;
        (line, col)
    }
}

/// One problem, located.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub line: usize,
    pub column: usize,
    pub message: String,
}

/// Every problem found in one config file. Displays as one
/// `file:line:column: error: message` line per problem.
#[derive(Debug, Clone)]
pub struct ConfigErrors {
    pub file: String,
    pub errors: Vec<Diagnostic>,
}

impl std::error::Error for ConfigErrors {}

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, d) in self.errors.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{}:{}:{}: error: {}", self.file, d.line, d.column, d.message)?;
        }
        Ok(())
    }
}

/// Collects diagnostics against one source file.
#[derive(Debug)]
pub struct Collector {
    source: Arc<SourceFile>,
    errors: Vec<Diagnostic>,
}

impl Collector {
    pub fn new(source: Arc<SourceFile>) -> Self {
        Self { source, errors: Vec::new() }
    }

    /// Record `message` at the start of `span`.
    pub fn error(&mut self, span: Range<usize>, message: impl Into<String>) {
        let (line, column) = self.source.position(span.start);
        self.errors.push(Diagnostic { line, column, message: message.into() });
    }

    /// Record a TOML/serde error (which carries its own span, if any).
    pub fn toml_error(&mut self, e: &toml::de::Error, fallback: Range<usize>) {
        let span = e.span().unwrap_or(fallback);
        self.error(span, e.message().trim().to_owned());
    }

    pub fn is_empty(&self) -> bool {
        self.errors.is_empty()
    }

    /// How many problems so far (to tell whether a part added any).
    pub fn count(&self) -> usize {
        self.errors.len()
    }

    /// Line and column of a byte offset in this source.
    pub fn position(&self, at: usize) -> (usize, usize) {
        self.source.position(at)
    }

    /// The problems in file order, or `Ok` if there were none.
    pub fn finish(mut self) -> Result<(), ConfigErrors> {
        if self.errors.is_empty() {
            return Ok(());
        }
        self.errors.sort_by_key(|d| (d.line, d.column));
        self.errors.dedup();
        Err(ConfigErrors { file: self.source.name.clone(), errors: self.errors })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_are_one_based_lines_and_character_columns() {
        let src = SourceFile { name: "f".into(), text: "ab\ncdé\nx".into() };
        assert_eq!(src.position(0), (1, 1));
        assert_eq!(src.position(3), (2, 1));
        assert_eq!(src.position(7), (2, 4)); // after the two-byte é
        assert_eq!(src.position(8), (3, 1));
    }

    #[test]
    fn errors_print_sorted_one_per_line() {
        let src = Arc::new(SourceFile { name: "c.toml".into(), text: "a\nb\n".into() });
        let mut c = Collector::new(src);
        c.error(2..3, "second");
        c.error(0..1, "first");
        let e = c.finish().unwrap_err();
        assert_eq!(e.to_string(), "c.toml:1:1: error: first\nc.toml:2:1: error: second");
    }
}
