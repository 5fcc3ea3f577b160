//! Each option's vocabulary, once: the names by which the command line, the Python module and
//! file metadata spell an enum's values, and the one-line meaning help texts show.

/// An enum whose values each have one name, the same on the command line, in Python keywords
/// and in file metadata. `-` and `_` are the same in a name given (`repeat_last` is
/// `repeat-last`).
pub trait Vocabulary: Copy + PartialEq + Sized + 'static {
    /// Every value, in the order help texts list them.
    const ALL: &'static [Self];

    /// Its name.
    fn name(self) -> &'static str;

    /// What it means, in one line, for help texts.
    fn help(self) -> &'static str;

    /// Every value's name, in [`Vocabulary::ALL`]'s order.
    fn names() -> Vec<&'static str> {
        Self::ALL.iter().map(|v| v.name()).collect()
    }

    /// The value named `text`.
    ///
    /// # Errors
    /// When no value has that name: the message quotes it and lists every name.
    fn parse_name(text: &str) -> Result<Self, String> {
        let wanted = text.trim().replace('-', "_");
        Self::ALL
            .iter()
            .copied()
            .find(|v| v.name().replace('-', "_") == wanted)
            .ok_or_else(|| {
                format!(
                    "`{text}` is not one of the accepted values: {}",
                    Self::names().join(", ")
                )
            })
    }
}

/// `FromStr` and `Display` by a type's [`Vocabulary`] names.
macro_rules! by_name {
    ($($t:ty),*) => {$(
        impl std::str::FromStr for $t {
            type Err = String;
            fn from_str(text: &str) -> std::result::Result<Self, String> {
                <$t as $crate::Vocabulary>::parse_name(text)
            }
        }
        impl std::fmt::Display for $t {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str($crate::Vocabulary::name(*self))
            }
        }
    )*};
}
pub(crate) use by_name;
