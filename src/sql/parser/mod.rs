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
/// and comments do not split.
pub fn split_statements(sql: &str) -> Vec<String> {
    use datafusion::sql::sqlparser::tokenizer::{Token, Tokenizer};
    let Ok(tokens) = Tokenizer::new(&SluiceDialect, sql).tokenize_with_location() else {
        return vec![sql.to_string()];
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
    for t in &tokens {
        if t.token == Token::SemiColon {
            let Some(at) = offset(t.span.start.line, t.span.start.column) else {
                return vec![sql.to_string()];
            };
            out.push(sql[from..at].to_string());
            from = at + 1;
        }
    }
    out.push(sql[from..].to_string());
    let out: Vec<String> = out.into_iter().filter(|s| !s.trim().is_empty()).collect();
    if out.is_empty() {
        vec![sql.to_string()]
    } else {
        out
    }
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
}
