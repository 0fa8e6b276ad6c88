//! Cross-sections within a sample, time series over each security's full history.
//!
//! A factor over a panel mixes two kinds of windows. A time-series window is partitioned by
//! the security (`PARTITION BY security_id ORDER BY date`): it looks back over that security's
//! own rows. Every other window — `cs_rank(x) OVER (PARTITION BY date)`, `cs_winsorize`,
//! `fm_residual`, `squeeze_score`, `AVG(x) OVER (PARTITION BY date)`, a window without
//! PARTITION BY — compares securities with each other.
//!
//! When a panel or a report is restricted to a sample (a universe's members on each date; for
//! the report's ex-HTB side, the members that are not hard to borrow that day), the rule is:
//! the factor is evaluated over every row, so that a security's time series keep their full
//! history (a name that joins a universe keeps its past), but every window that compares
//! securities sees only the sample's rows. [`within_sample`] rewrites the factor's SQL so: each
//! window whose PARTITION BY does not name `security_id` is also partitioned by a Boolean
//! column that says whether the row is in the sample. Members are then ranked among members;
//! what the other rows get is never used (they are left out afterwards).
//!
//! The rewrite works on the parsed expression (sqlparser, DataFusion's own parser), not on the
//! text, and leaves subqueries alone: a subquery has its own FROM, which the sample column is
//! not part of.

use std::ops::ControlFlow;

use datafusion::sql::sqlparser::ast::{Expr, Ident, Query, VisitMut, VisitorMut, WindowType};
use datafusion::sql::sqlparser::dialect::GenericDialect;
use datafusion::sql::sqlparser::parser::Parser;
use datafusion::sql::sqlparser::tokenizer::Token;

use crate::error::{LendfusionError, Result};

/// A factor's SQL with its cross-sectional windows restricted to a sample.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SampledFactor {
    /// The rewritten SQL expression.
    pub sql: String,
    /// Whether the factor has a window that compares securities (and was rewritten): without
    /// one, the factor's value on a row does not depend on which rows are in the sample.
    pub cross_sectional: bool,
}

fn invalid(message: String) -> LendfusionError {
    LendfusionError::DataFusion(datafusion::error::DataFusionError::Plan(message))
}

/// One SQL expression, parsed as DataFusion parses SQL (its default, generic dialect).
pub fn parse_expression(sql: &str) -> Result<Expr> {
    let dialect = GenericDialect {};
    let mut parser = Parser::new(&dialect)
        .try_with_sql(sql)
        .map_err(|e| invalid(format!("factor {sql:?}: {e}")))?;
    let expr = parser
        .parse_expr()
        .map_err(|e| invalid(format!("factor {sql:?}: {e}")))?;
    if parser.peek_token().token != Token::EOF {
        return Err(invalid(format!(
            "factor {sql:?}: one SQL expression expected, found more after {expr}"
        )));
    }
    Ok(expr)
}

/// `sql` with every window that compares securities also partitioned by the Boolean column
/// `sample` (see the module documentation).
pub fn within_sample(sql: &str, sample: &str) -> Result<SampledFactor> {
    let mut expr = parse_expression(sql)?;
    let mut rewrite = AddSample {
        sample: Ident::new(sample),
        depth: 0,
        rewritten: 0,
    };
    let _ = expr.visit(&mut rewrite);
    Ok(SampledFactor {
        sql: expr.to_string(),
        cross_sectional: rewrite.rewritten > 0,
    })
}

/// Whether a PARTITION BY key is the column `security_id` (bare or qualified).
fn is_security(key: &Expr) -> bool {
    let named = |ident: &Ident| match ident.quote_style {
        None => ident.value.eq_ignore_ascii_case("security_id"),
        Some(_) => ident.value == "security_id",
    };
    match key {
        Expr::Identifier(ident) => named(ident),
        Expr::CompoundIdentifier(parts) => parts.last().is_some_and(named),
        Expr::Nested(inner) => is_security(inner),
        _ => false,
    }
}

struct AddSample {
    sample: Ident,
    /// Subqueries entered: their windows are left alone.
    depth: usize,
    rewritten: usize,
}

impl VisitorMut for AddSample {
    type Break = ();

    fn pre_visit_query(&mut self, _query: &mut Query) -> ControlFlow<()> {
        self.depth += 1;
        ControlFlow::Continue(())
    }

    fn post_visit_query(&mut self, _query: &mut Query) -> ControlFlow<()> {
        self.depth -= 1;
        ControlFlow::Continue(())
    }

    fn post_visit_expr(&mut self, expr: &mut Expr) -> ControlFlow<()> {
        if self.depth > 0 {
            return ControlFlow::Continue(());
        }
        if let Expr::Function(function) = expr
            && let Some(WindowType::WindowSpec(spec)) = &mut function.over
            && !spec.partition_by.iter().any(is_security)
        {
            spec.partition_by
                .push(Expr::Identifier(self.sample.clone()));
            self.rewritten += 1;
        }
        ControlFlow::Continue(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rewrite(sql: &str) -> (String, bool) {
        let s = within_sample(sql, "in_sample").expect("rewrite");
        (s.sql, s.cross_sectional)
    }

    #[test]
    fn cross_sectional_windows_are_partitioned_by_the_sample() {
        assert_eq!(
            rewrite("cs_rank(fee_bps) OVER (PARTITION BY date)"),
            (
                "cs_rank(fee_bps) OVER (PARTITION BY date, in_sample)".into(),
                true
            )
        );
        assert_eq!(
            rewrite(
                "cs_rank(fee_bps) OVER (PARTITION BY date) + \
                 cs_rank(utilization(on_loan_qty, lendable_qty)) OVER (PARTITION BY p.date)"
            ),
            (
                "cs_rank(fee_bps) OVER (PARTITION BY date, in_sample) + \
                 cs_rank(utilization(on_loan_qty, lendable_qty)) OVER (PARTITION BY p.date, in_sample)"
                    .into(),
                true
            )
        );
        // No PARTITION BY, or another key: it still compares securities.
        assert_eq!(
            rewrite("AVG(fee_bps) OVER (ORDER BY date ROWS BETWEEN 5 PRECEDING AND CURRENT ROW)").0,
            "AVG(fee_bps) OVER (PARTITION BY in_sample ORDER BY date ROWS BETWEEN 5 PRECEDING AND CURRENT ROW)"
        );
    }

    #[test]
    fn time_series_windows_and_plain_expressions_are_unchanged() {
        for sql in [
            "utilization(on_loan_qty, lendable_qty)",
            "ts_zscore(fee_bps, 20) OVER (PARTITION BY security_id ORDER BY date)",
            "past_return(total_return, 252, 21) OVER (PARTITION BY SECURITY_ID ORDER BY date)",
            "AVG(volume) OVER (PARTITION BY p.security_id ORDER BY date ROWS BETWEEN 29 PRECEDING AND CURRENT ROW)",
            "fee_bps - (SELECT avg(fee_bps) OVER (PARTITION BY date) FROM lending LIMIT 1)",
        ] {
            let (out, cs) = rewrite(sql);
            assert!(!cs, "{sql}");
            assert_eq!(
                parse_expression(&out).expect("reparse"),
                parse_expression(sql).expect("parse")
            );
        }
        // Mixed: only the cross-sectional part changes.
        assert_eq!(
            rewrite(
                "cs_rank(fee_bps) OVER (PARTITION BY date) \
                 + 0.1 * ts_zscore(fee_bps, 20) OVER (PARTITION BY security_id ORDER BY date)"
            )
            .0,
            "cs_rank(fee_bps) OVER (PARTITION BY date, in_sample) \
             + 0.1 * ts_zscore(fee_bps, 20) OVER (PARTITION BY security_id ORDER BY date)"
        );
    }

    #[test]
    fn every_built_in_factor_parses_and_only_squeeze_score_is_cross_sectional() {
        for factor in crate::factors::builtin_factors() {
            let (_, cs) = rewrite(factor.sql);
            assert_eq!(cs, factor.name == "squeeze_score", "{}", factor.name);
        }
    }

    #[test]
    fn anything_but_one_expression_is_refused() {
        for sql in [
            "fee_bps) FROM lending --",
            "fee_bps, on_loan_qty",
            "cs_rank(",
        ] {
            let e = within_sample(sql, "in_sample").expect_err(sql).to_string();
            assert!(e.contains("factor"), "{e}");
        }
    }
}
