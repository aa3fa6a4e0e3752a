//! How deep a statement may nest.
//!
//! sqlparser builds a chain such as `1+1+...+1` or `SELECT 1 UNION SELECT 2
//! UNION ...` with a loop, not by recursion, so its recursion limit does not
//! bound how deep the tree is; every later step that walks the tree
//! recursively (cloning, comparing, dropping, planning, evaluating) does. A
//! few thousand terms are enough to overflow a thread's stack, which aborts
//! the whole process (the server with every client on it). DuckDB refuses
//! expressions deeper than `max_expression_depth` (1000); sluice does the
//! same, with an error that says what to change, and takes the refused tree
//! apart without recursing on the thread's own stack.

use datafusion::common::{plan_err, Result};
use datafusion::sql::parser::{CopyToSource, Statement as DFStatement};
use datafusion::sql::sqlparser::ast::{
    BinaryOperator, Expr, Query, SetExpr, SetOperator, SetQuantifier, Value, Values, Visit,
    VisitMut, Visitor, VisitorMut,
};
use std::ops::ControlFlow;

/// Deepest nesting of expressions (and of set operations) a statement may have.
pub const MAX_EXPRESSION_DEPTH: usize = 1000;

/// Statements longer than this are parsed on a stack of their own.
const LARGE_STATEMENT: usize = 128 << 10;

/// Runs `parse` (and the depth check) for a statement of `len` bytes. sqlparser
/// drops the tree it has built so far when it meets a syntax error, and that
/// drop recurses once per level: a long chain followed by a typo would
/// overflow the stack before any depth check runs. Large statements are
/// therefore parsed on a heap-allocated stack sized by their length (only the
/// pages a deep tree touches cost memory).
pub(crate) fn parse_guarded<T>(len: usize, parse: impl FnOnce() -> T) -> T {
    if len <= LARGE_STATEMENT {
        return parse();
    }
    // At most one level per two bytes, a few hundred bytes of stack per level
    // (unoptimised builds), plus room for the parser itself.
    let stack = len.saturating_mul(256).saturating_add(8 << 20);
    stacker::grow(stack, parse)
}

/// Refuses a statement nested deeper than [`MAX_EXPRESSION_DEPTH`]; the refused
/// statement is dismantled safely.
pub(crate) fn check(statement: DFStatement) -> Result<DFStatement> {
    check_with_limit(statement, MAX_EXPRESSION_DEPTH)
}

fn check_with_limit(mut statement: DFStatement, limit: usize) -> Result<DFStatement> {
    balance(&mut statement);
    let mut depth = Depth { current: 0, limit };
    let too_deep = match &statement {
        DFStatement::Statement(s) => s.visit(&mut depth).is_break(),
        DFStatement::Explain(e) => match e.statement.as_ref() {
            DFStatement::Statement(s) => s.visit(&mut depth).is_break(),
            _ => false,
        },
        DFStatement::CopyTo(c) => match &c.source {
            CopyToSource::Query(q) => q.visit(&mut depth).is_break(),
            _ => false,
        },
        _ => false,
    };
    if !too_deep {
        return Ok(statement);
    }
    dismantle(&mut statement);
    plan_err!(
        "the statement nests expressions or set operations more than {limit} levels deep \
         (for example a chain of more than {limit} `+`, `AND` or `UNION`); \
         split it up, e.g. sum a column or use IN (...) instead of a long chain of OR"
    )
}

/// Rebalances associative chains (see the module doc).
fn balance(statement: &mut DFStatement) {
    struct Balance;
    impl VisitorMut for Balance {
        type Break = ();
        fn pre_visit_expr(&mut self, expr: &mut Expr) -> ControlFlow<()> {
            if let Expr::BinaryOp { op, .. } = expr {
                if matches!(
                    op,
                    BinaryOperator::And | BinaryOperator::Or | BinaryOperator::StringConcat
                ) {
                    let op = op.clone();
                    let chain = std::mem::replace(expr, Expr::Value(Value::Null.into()));
                    let operands = flatten_expr(chain, &op);
                    *expr = balanced_expr(operands, &op);
                }
            }
            ControlFlow::Continue(())
        }
        fn pre_visit_query(&mut self, query: &mut Query) -> ControlFlow<()> {
            if let SetExpr::SetOperation {
                op, set_quantifier, ..
            } = query.body.as_ref()
            {
                if !matches!(op, SetOperator::Except | SetOperator::Minus) {
                    let (op, quantifier) = (*op, *set_quantifier);
                    let chain = std::mem::replace(&mut query.body, empty_set());
                    let operands = flatten_set(chain, op, quantifier);
                    query.body = balanced_set(operands, op, quantifier);
                }
            }
            ControlFlow::Continue(())
        }
    }
    let _ = match statement {
        DFStatement::Statement(s) => s.visit(&mut Balance),
        DFStatement::Explain(e) => match e.statement.as_mut() {
            DFStatement::Statement(s) => s.visit(&mut Balance),
            _ => ControlFlow::Continue(()),
        },
        DFStatement::CopyTo(c) => match &mut c.source {
            CopyToSource::Query(q) => q.visit(&mut Balance),
            _ => ControlFlow::Continue(()),
        },
        _ => ControlFlow::Continue(()),
    };
}

/// The operands of a chain of `op`, left to right, without recursion.
fn flatten_expr(chain: Expr, op: &BinaryOperator) -> Vec<Expr> {
    let mut operands = Vec::new();
    let mut pending = vec![chain];
    while let Some(e) = pending.pop() {
        match e {
            Expr::BinaryOp { left, op: o, right } if &o == op => {
                pending.push(*right);
                pending.push(*left);
            }
            other => operands.push(other),
        }
    }
    operands
}

fn balanced_expr(mut operands: Vec<Expr>, op: &BinaryOperator) -> Expr {
    if operands.len() <= 1 {
        return operands.pop().unwrap_or(Expr::Value(Value::Null.into()));
    }
    let right = operands.split_off(operands.len() / 2);
    Expr::BinaryOp {
        left: Box::new(balanced_expr(operands, op)),
        op: op.clone(),
        right: Box::new(balanced_expr(right, op)),
    }
}

fn empty_set() -> Box<SetExpr> {
    Box::new(SetExpr::Values(Values {
        explicit_row: false,
        value_keyword: false,
        rows: Vec::new(),
    }))
}

/// The operands of a chain of one set operation, left to right, without
/// recursion.
fn flatten_set(chain: Box<SetExpr>, op: SetOperator, quantifier: SetQuantifier) -> Vec<SetExpr> {
    let mut operands = Vec::new();
    let mut pending = vec![chain];
    while let Some(e) = pending.pop() {
        match *e {
            SetExpr::SetOperation {
                left,
                op: o,
                set_quantifier: q,
                right,
            } if o == op && q == quantifier => {
                pending.push(right);
                pending.push(left);
            }
            other => operands.push(other),
        }
    }
    operands
}

fn balanced_set(
    mut operands: Vec<SetExpr>,
    op: SetOperator,
    quantifier: SetQuantifier,
) -> Box<SetExpr> {
    if operands.len() <= 1 {
        return operands.pop().map(Box::new).unwrap_or_else(empty_set);
    }
    let right = operands.split_off(operands.len() / 2);
    Box::new(SetExpr::SetOperation {
        left: balanced_set(operands, op, quantifier),
        op,
        set_quantifier: quantifier,
        right: balanced_set(right, op, quantifier),
    })
}

/// Tracks the nesting depth during a visit; breaks past the limit.
struct Depth {
    current: usize,
    limit: usize,
}

impl Depth {
    fn enter(&mut self, levels: usize) -> ControlFlow<()> {
        self.current += levels;
        if self.current > self.limit {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        }
    }
}

impl Visitor for Depth {
    type Break = ();

    fn pre_visit_expr(&mut self, _expr: &Expr) -> ControlFlow<()> {
        self.enter(1)
    }

    fn post_visit_expr(&mut self, _expr: &Expr) -> ControlFlow<()> {
        self.current -= 1;
        ControlFlow::Continue(())
    }

    fn pre_visit_query(&mut self, query: &Query) -> ControlFlow<()> {
        self.enter(set_depth(&query.body))
    }

    fn post_visit_query(&mut self, query: &Query) -> ControlFlow<()> {
        self.current -= set_depth(&query.body);
        ControlFlow::Continue(())
    }
}

/// Length of the chain of set operations of a query body, without recursion on
/// the left side (where the parser's loop builds the chain); 0 for one SELECT.
fn set_depth(body: &SetExpr) -> usize {
    let mut depth = 0;
    let mut at = body;
    while let SetExpr::SetOperation { left, right, .. } = at {
        depth += 1;
        if matches!(right.as_ref(), SetExpr::SetOperation { .. }) {
            // A parenthesised chain on the right: counted by its own query.
            depth += 1;
        }
        at = left;
    }
    depth
}

/// Replaces every expression and set operation by a leaf, children first, so
/// that dropping the statement no longer recurses deeply. The visit itself is
/// protected by sqlparser's `recursive-protection` (it grows the stack on the
/// heap), which plain `Drop` is not.
fn dismantle(statement: &mut DFStatement) {
    struct Flatten;
    impl VisitorMut for Flatten {
        type Break = ();
        fn post_visit_expr(&mut self, expr: &mut Expr) -> ControlFlow<()> {
            *expr = Expr::Value(Value::Null.into());
            ControlFlow::Continue(())
        }
        fn post_visit_query(&mut self, query: &mut Query) -> ControlFlow<()> {
            flatten_sets(&mut query.body);
            ControlFlow::Continue(())
        }
    }
    let _ = match statement {
        DFStatement::Statement(s) => s.visit(&mut Flatten),
        DFStatement::Explain(e) => match e.statement.as_mut() {
            DFStatement::Statement(s) => s.visit(&mut Flatten),
            _ => ControlFlow::Continue(()),
        },
        DFStatement::CopyTo(c) => match &mut c.source {
            CopyToSource::Query(q) => q.visit(&mut Flatten),
            _ => ControlFlow::Continue(()),
        },
        _ => ControlFlow::Continue(()),
    };
}

/// Takes a left-deep chain of set operations apart iteratively.
fn flatten_sets(body: &mut Box<SetExpr>) {
    let mut pending: Vec<Box<SetExpr>> = Vec::new();
    pending.push(std::mem::replace(body, empty_set()));
    while let Some(mut node) = pending.pop() {
        if let SetExpr::SetOperation { left, right, .. } = node.as_mut() {
            pending.push(std::mem::replace(left, empty_set()));
            pending.push(std::mem::replace(right, empty_set()));
        }
        drop(node);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::sql::parser::DFParserBuilder;

    fn parse(sql: &str) -> DFStatement {
        let mut parser = DFParserBuilder::new(sql).build().unwrap();
        parser.parse_statement().unwrap()
    }

    #[test]
    fn shallow_statements_pass() {
        let terms = vec!["1"; 900].join("+");
        assert!(check(parse(&format!("SELECT {terms}"))).is_ok());
        let unions = vec!["SELECT 1"; 900].join(" UNION ALL ");
        assert!(check(parse(&unions)).is_ok());
        let list = vec!["1"; 50_000].join(",");
        assert!(check(parse(&format!("SELECT 1 WHERE 1 IN ({list})"))).is_ok());
    }

    #[test]
    fn deep_chains_are_refused_and_dropped_safely() {
        // Deep enough to overflow a 2 MiB stack when dropped recursively.
        for sql in [
            format!("SELECT {}", vec!["1"; 200_000].join("+")),
            format!("EXPLAIN SELECT {}", vec!["x"; 100_000].join("-")),
            format!("SELECT CAST(1 AS INT){}", "::INT".repeat(100_000)),
            // A chain of EXCEPT is not associative: not rebalanced.
            vec!["SELECT 1"; 50_000].join(" EXCEPT "),
        ] {
            let statement = parse(&sql);
            let err = std::thread::Builder::new()
                .stack_size(1 << 20)
                .spawn(move || check(statement).map(|_| ()).unwrap_err().to_string())
                .unwrap()
                .join()
                .unwrap();
            assert!(err.contains("more than 1000 levels deep"), "{err}");
        }
    }

    #[test]
    fn a_syntax_error_after_a_deep_chain_does_not_overflow() {
        let sql = format!("SELECT {} +", vec!["1"; 200_000].join("+"));
        let err = std::thread::Builder::new()
            .stack_size(1 << 20)
            .spawn(move || {
                parse_guarded(sql.len(), || {
                    DFParserBuilder::new(sql.as_str())
                        .build()
                        .and_then(|mut p| p.parse_statement())
                        .map(|_| ())
                        .unwrap_err()
                        .to_string()
                })
            })
            .unwrap()
            .join()
            .unwrap();
        assert!(err.contains("Expected"), "{err}");
    }

    #[test]
    fn associative_chains_are_rebalanced_in_order() {
        let ors = format!(
            "SELECT 1 WHERE {}",
            (0..100_000)
                .map(|i| format!("a = {i}"))
                .collect::<Vec<_>>()
                .join(" OR ")
        );
        let unions = (0..50_000)
            .map(|i| format!("SELECT {i}"))
            .collect::<Vec<_>>()
            .join(" UNION ALL ");
        let concat = format!("SELECT {}", vec!["'x'"; 20_000].join(" || "));
        for sql in [ors, unions, concat] {
            let statement = parse(&sql);
            let text = std::thread::Builder::new()
                .stack_size(4 << 20)
                .spawn(move || check(statement).map(|s| s.to_string()))
                .unwrap()
                .join()
                .unwrap()
                .unwrap();
            // Same operands in the same order; only parentheses differ.
            let strip = |s: &str| s.replace(['(', ')'], "");
            assert_eq!(strip(&text), strip(&sql));
        }
        // Mixed operators keep their grouping: `b AND c` stays one operand.
        let s = check(parse("SELECT a OR b AND c OR d")).unwrap();
        let DFStatement::Statement(s) = s else {
            panic!()
        };
        let text = format!("{s:?}");
        assert!(
            text.matches("op: And").count() == 1 && text.matches("op: Or").count() == 2,
            "{text}"
        );
    }

    #[test]
    fn the_limit_is_exact() {
        // `1+1` is a BinaryOp over two values: depth 2; n terms: depth n.
        let at = |n: usize| format!("SELECT {}", vec!["1"; n].join("+"));
        assert!(check_with_limit(parse(&at(10)), 10).is_ok());
        assert!(check_with_limit(parse(&at(11)), 10).is_err());
    }
}
