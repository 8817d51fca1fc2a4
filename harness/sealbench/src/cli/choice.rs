//! The enums flags take, listed in `--help` from the same source their parsing uses: each
//! type's `ALL` and `name()` give the possible values clap prints, and its `FromStr` parses
//! (so an alias such as `ratchet` for `kdf-chain`, or another case, still parses, and no
//! help text can list a value the parser refuses or leave out one it takes).

use clap::builder::{PossibleValue, TypedValueParser};
use std::ffi::OsStr;
use std::marker::PhantomData;
use std::str::FromStr;

/// An enum a flag takes: every value and its name.
pub trait Named: Copy + FromStr + Send + Sync + 'static {
    /// Every value, in the order help lists them.
    fn all() -> &'static [Self];
    /// The name a value is written as.
    fn label(self) -> &'static str;
}

macro_rules! named {
    ($($t:ty),* $(,)?) => {$(
        impl Named for $t {
            fn all() -> &'static [Self] {
                &<$t>::ALL
            }
            fn label(self) -> &'static str {
                self.name()
            }
        }
    )*};
}

named!(
    sealcore::AeadKind,
    sealcore::Pattern,
    sealcore::Backend,
    sealproto::Protocol,
    crate::scenario::Mode,
    crate::scenario::Transport,
);

/// The value parser of a [`Named`] flag (`value_parser = choice::<T>()`).
pub fn choice<T: Named>() -> Choice<T> {
    Choice(PhantomData)
}

/// See [`choice`].
#[derive(Debug)]
pub struct Choice<T>(PhantomData<T>);

impl<T> Clone for Choice<T> {
    fn clone(&self) -> Self {
        Choice(PhantomData)
    }
}

impl<T: Named> TypedValueParser for Choice<T>
where
    <T as FromStr>::Err: std::fmt::Display,
{
    type Value = T;

    fn parse_ref(&self, cmd: &clap::Command, arg: Option<&clap::Arg>, value: &OsStr) -> Result<T, clap::Error> {
        let text = value.to_string_lossy();
        text.parse::<T>().map_err(|e| {
            let names: Vec<&str> = T::all().iter().map(|v| v.label()).collect();
            let flag = arg.map_or_else(|| "the value".to_owned(), |a| format!("--{}", a.get_id()));
            let why = e.to_string();
            let list = if names.iter().all(|n| why.contains(n)) {
                String::new()
            } else {
                format!(" (one of: {})", names.join(", "))
            };
            clap::Error::raw(clap::error::ErrorKind::InvalidValue, format!("{flag} `{text}`: {why}{list}\n"))
                .with_cmd(cmd)
        })
    }

    fn possible_values(&self) -> Option<Box<dyn Iterator<Item = PossibleValue> + '_>> {
        Some(Box::new(T::all().iter().map(|v| PossibleValue::new(v.label()))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trips<T: Named + PartialEq + std::fmt::Debug>() {
        for v in T::all() {
            assert_eq!(v.label().parse::<T>().ok(), Some(*v), "{} parses back", v.label());
        }
    }

    #[test]
    fn every_listed_value_parses_back_to_itself() {
        round_trips::<sealcore::AeadKind>();
        round_trips::<sealcore::Pattern>();
        round_trips::<sealcore::Backend>();
        round_trips::<sealproto::Protocol>();
        round_trips::<crate::scenario::Mode>();
        round_trips::<crate::scenario::Transport>();
    }
}
