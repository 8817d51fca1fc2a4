//! Old spellings that still work for one release, each with a warning naming the new one:
//! rewritten in the argument list before clap sees it, so the flags themselves have one
//! spelling and one meaning (`capacity --clients` was a switch; `--clients N` now takes a
//! number in every command).

use std::ffi::OsString;

/// The command line with every deprecated spelling replaced by its new one (a warning on
/// stderr for each).
pub fn rewrite(args: Vec<OsString>) -> Vec<OsString> {
    let (warnings, out) = rewritten(args);
    for w in warnings {
        eprintln!("warning: {w}");
    }
    out
}

/// [`rewrite`] without printing: (warnings, new arguments).
pub fn rewritten(args: Vec<OsString>) -> (Vec<String>, Vec<OsString>) {
    let is_capacity = args.get(1).is_some_and(|a| a == "capacity");
    if !is_capacity {
        return (Vec::new(), args);
    }
    let mut warnings = Vec::new();
    let mut out = Vec::with_capacity(args.len() + 1);
    let mut it = args.into_iter().peekable();
    while let Some(a) = it.next() {
        let number_follows = it.peek().is_some_and(|n| n.to_str().is_some_and(|n| n.parse::<usize>().is_ok()));
        if a == "--clients" && !number_follows {
            warnings.push(
                "capacity --clients (a switch) is now --search clients; --clients N sets the client count".into(),
            );
            out.extend(["--search".into(), "clients".into()]);
        } else if a == "--mode" {
            warnings.push("capacity --mode is now --method (runs|ramp)".into());
            out.push("--method".into());
        } else if let Some(v) = a.to_str().and_then(|s| s.strip_prefix("--mode=")) {
            warnings.push("capacity --mode is now --method (runs|ramp)".into());
            out.push(format!("--method={v}").into());
        } else {
            out.push(a);
        }
    }
    (warnings, out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(s: &str) -> Vec<OsString> {
        s.split_whitespace().map(OsString::from).collect()
    }

    #[test]
    fn the_old_capacity_switches_become_the_new_flags_with_a_warning() {
        let (w, out) = rewritten(words("sealbench capacity s.toml --clients --mode ramp --slo x"));
        assert_eq!(out, words("sealbench capacity s.toml --search clients --method ramp --slo x"));
        assert_eq!(w.len(), 2);
        let (w, out) = rewritten(words("sealbench capacity s.toml --clients 200"));
        assert_eq!(out, words("sealbench capacity s.toml --clients 200"));
        assert!(w.is_empty());
        let (w, out) = rewritten(words("sealbench matrix s.toml --mode noise"));
        assert_eq!(out, words("sealbench matrix s.toml --mode noise"), "matrix's --mode is the transport mode");
        assert!(w.is_empty());
    }
}
