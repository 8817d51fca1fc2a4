//! `sealbench compare BASE NEW`.

use crate::cli::CompareArgs;
use crate::error::{EXIT_THRESHOLDS, Failure, Outcome};
use crate::verdict::compare::{self, Rule, figures};
use anyhow::Context;
use std::process::ExitCode;

/// Runs `sealbench compare`.
///
/// # Errors
/// Exit 2 for unreadable results, bad rules or incomparable runs (without --force).
pub fn run(args: &CompareArgs) -> Outcome {
    let base = figures::load(&args.base).map_err(Failure::usage)?;
    let new = figures::load(&args.new).map_err(Failure::usage)?;
    let rules: Vec<Rule> = if args.fail_on.is_empty() {
        compare::default_rules(base.kind())
    } else {
        args.fail_on.iter().map(|r| Rule::parse(r)).collect::<Result<_, _>>().map_err(Failure::usage)?
    };
    compare::check_rules_match(&rules, &base, &new).map_err(Failure::usage)?;
    let warnings = compare::compatible(&base, &new, args.force).map_err(Failure::usage)?;
    let cmp = compare::compare(&base, &new, &rules, warnings);
    if args.json {
        crate::output::stdout(&format!(
            "{}\n",
            serde_json::to_string_pretty(&cmp).context("serialising the comparison")?
        ));
    } else {
        crate::output::stdout(&cmp.table());
    }
    if cmp.regression {
        return Ok(ExitCode::from(EXIT_THRESHOLDS));
    }
    Ok(ExitCode::SUCCESS)
}
