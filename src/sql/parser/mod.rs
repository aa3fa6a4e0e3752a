//! The one SQL front end's parser: every statement sluice reads (queries,
//! models, stored views, Flight SQL requests, dependency inference) is parsed
//! here, so they all accept the same syntax.
//!
//! [`parse_statements`] tokenizes with [`SluiceDialect`] (DataFusion's generic
//! dialect plus `VERSION AS OF` / `TIMESTAMP AS OF`), rewrites the AS OF join
//! forms sqlparser cannot parse ([`rewrite`]), parses with DataFusion's parser
//! and refuses statements nested deeper than [`super::MAX_EXPRESSION_DEPTH`].

mod rewrite;

pub use rewrite::{
    decode, nest_asof_joins, nest_asof_joins_in_query, time_travel_factors,
    time_travel_factors_in_query, tokenize_and_rewrite, AsOfKind, AsOfSpec, SluiceDialect,
    ASOF_MARKER,
};

use datafusion::common::Result;
use datafusion::error::DataFusionError;
use datafusion::sql::parser::{DFParserBuilder, Statement as DFStatement};

/// Parses `sql` (any number of statements) with sluice's syntax. Statements
/// nested too deeply are refused (and taken apart without recursion); a large
/// statement is parsed on a stack of its own.
pub fn parse_statements(sql: &str, recursion_limit: usize) -> Result<Vec<DFStatement>> {
    let tokens = tokenize_and_rewrite(sql).map_err(|e| DataFusionError::SQL(Box::new(e), None))?;
    super::depth::parse_guarded(sql.len(), || -> Result<Vec<DFStatement>> {
        let statements = DFParserBuilder::new(tokens)
            .with_dialect(&SluiceDialect)
            .with_recursion_limit(recursion_limit)
            .build()?
            .parse_statements()?;
        // Every statement is checked (a refused one must be taken apart, not
        // dropped).
        let mut checked = Vec::with_capacity(statements.len());
        let mut refused = None;
        for statement in statements {
            match super::depth::check(statement) {
                Ok(s) => checked.push(s),
                Err(e) => refused = refused.or(Some(e)),
            }
        }
        match refused {
            Some(e) => Err(e),
            None => Ok(checked),
        }
    })
}

/// Splits a `;`-separated list of statements (as the CLI receives them) into
/// their texts, with sluice's dialect: semicolons inside strings, quoted names
/// and comments do not split. Pieces holding only whitespace and comments
/// (`SELECT 1; -- done`) are no statements: text with none gives an empty
/// list. Text that does not tokenize (an unclosed quote) is one statement, for
/// the parser to report.
pub fn split_statements(sql: &str) -> Vec<String> {
    split_statements_with_lines(sql)
        .into_iter()
        .map(|(_, text)| text)
        .collect()
}

/// [`split_statements`], each statement with the line (1-based) its first
/// token is on, for messages that point into a script.
pub fn split_statements_with_lines(sql: &str) -> Vec<(usize, String)> {
    use datafusion::sql::sqlparser::tokenizer::{Token, Tokenizer};
    let Ok(tokens) = Tokenizer::new(&SluiceDialect, sql).tokenize_with_location() else {
        return whole(sql);
    };
    let starts: Vec<usize> = std::iter::once(0)
        .chain(sql.match_indices('\n').map(|(i, _)| i + 1))
        .collect();
    let offset = |line: u64, col: u64| -> Option<usize> {
        let start = *starts.get(usize::try_from(line).ok()?.checked_sub(1)?)?;
        let col = usize::try_from(col).ok()?.checked_sub(1)?;
        sql[start..].char_indices().nth(col).map(|(i, _)| start + i)
    };
    let mut out = Vec::new();
    let mut from = 0;
    // The line of the current piece's first token that is not whitespace or
    // a comment (none yet: the piece is empty so far).
    let mut first_line: Option<u64> = None;
    for t in &tokens {
        match &t.token {
            Token::SemiColon => {
                let Some(at) = offset(t.span.start.line, t.span.start.column) else {
                    return whole(sql);
                };
                if let Some(line) = first_line.take() {
                    out.push((line as usize, sql[from..at].to_string()));
                }
                from = at + 1;
            }
            Token::Whitespace(_) | Token::EOF => {}
            _ => {
                first_line.get_or_insert(t.span.start.line);
            }
        }
    }
    if let Some(line) = first_line {
        out.push((line as usize, sql[from..].to_string()));
    }
    out
}

/// What a shell has read so far, line by line: see [`input_state`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InputState {
    /// Only whitespace and comments: nothing to run.
    Blank,
    /// A statement that goes on: no `;` at the end yet, or an open quote or
    /// comment.
    Open,
    /// Ends with `;` (comments after it aside): run it.
    Complete,
}

/// Whether `sql` (input read line by line) is complete: it ends with `;`
/// outside strings, quoted names and comments, with sluice's dialect.
pub fn input_state(sql: &str) -> InputState {
    use datafusion::sql::sqlparser::tokenizer::{Token, Tokenizer};
    let Ok(tokens) = Tokenizer::new(&SluiceDialect, sql).tokenize() else {
        // An unclosed quote or comment.
        return InputState::Open;
    };
    match tokens
        .iter()
        .rev()
        .find(|t| !matches!(t, Token::Whitespace(_) | Token::EOF))
    {
        None => InputState::Blank,
        Some(Token::SemiColon) => InputState::Complete,
        Some(_) => InputState::Open,
    }
}

/// All of `sql` as one statement, unless it is blank.
fn whole(sql: &str) -> Vec<(usize, String)> {
    if sql.trim().is_empty() {
        return Vec::new();
    }
    let line = 1 + sql[..sql.len() - sql.trim_start().len()]
        .matches('\n')
        .count();
    vec![(line, sql.to_string())]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_statement_lists_with_sluice_syntax() {
        let sql = "SELECT ';' AS a; SELECT * FROM l ASOF JOIN r ON l.k = r.k AND l.t >= r.t TOLERANCE 3 ;\n-- x; y\nSELECT \"a;b\" FROM t VERSION AS OF 2;";
        let parts = split_statements(sql);
        assert_eq!(parts.len(), 3, "{parts:?}");
        assert_eq!(parts[0], "SELECT ';' AS a");
        assert!(parts[1].trim().ends_with("TOLERANCE 3"), "{parts:?}");
        assert!(parts[2].contains("VERSION AS OF 2"), "{parts:?}");
        assert_eq!(split_statements("SELECT 1"), vec!["SELECT 1"]);
    }

    #[test]
    fn comments_and_blanks_are_no_statements() {
        assert_eq!(split_statements("SELECT 1; -- done"), vec!["SELECT 1"]);
        assert_eq!(
            split_statements("SELECT 1;\n/* a; b */\n;; \n-- c\n"),
            vec!["SELECT 1"]
        );
        assert!(split_statements("-- nothing here").is_empty());
        assert!(split_statements("  ;\n; ").is_empty());
        assert!(split_statements("").is_empty());
        // A comment in front of a statement stays with it.
        assert_eq!(
            split_statements("-- first\nSELECT 1; SELECT 2"),
            vec!["-- first\nSELECT 1", " SELECT 2"]
        );
        // Text that does not tokenize is one statement, for the parser.
        assert_eq!(split_statements("SELECT 'x; y"), vec!["SELECT 'x; y"]);
    }

    #[test]
    fn input_ends_at_a_semicolon_outside_quotes_and_comments() {
        use InputState::*;
        assert_eq!(input_state(""), Blank);
        assert_eq!(input_state("  -- only a comment\n"), Blank);
        assert_eq!(input_state("SELECT 1"), Open);
        assert_eq!(input_state("SELECT 1;"), Complete);
        assert_eq!(input_state("SELECT 1; -- done\n"), Complete);
        assert_eq!(input_state("SELECT 1; SELECT 2"), Open);
        assert_eq!(input_state("SELECT 'a;\n"), Open);
        assert_eq!(input_state("SELECT 'a;\nb';"), Complete);
        assert_eq!(input_state("SELECT \"x;"), Open);
        assert_eq!(input_state("SELECT 1 /* ;\n"), Open);
        assert_eq!(input_state("SELECT 1 -- ;\n"), Open);
        assert_eq!(input_state(";"), Complete);
    }

    #[test]
    fn statements_know_their_line() {
        let sql = "-- header\n\nSELECT 1;\nSELECT\n  2; /* x */\n\n  SELECT 3";
        let lines: Vec<usize> = split_statements_with_lines(sql)
            .into_iter()
            .map(|(l, _)| l)
            .collect();
        assert_eq!(lines, vec![3, 4, 7]);
        assert_eq!(split_statements_with_lines("\n\nSELECT 'x")[0].0, 3);
    }
}
