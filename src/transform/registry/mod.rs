//! The transform registry: every transform declared once, as static data, in [`entries`].
//!
//! A transform has three lives, as in Greenmask and vector:
//! - a **definition**, [`TransformDef`]: its name, its parameters, the column types it fits,
//!   the properties the other stages ask about, its documented examples, and its constructor;
//! - a **binding**: the constructor, called once per column by
//!   [`Catalogue::bind`](super::Catalogue::bind), checks the rule's parameters and the column's
//!   type against the definition and precomputes everything the instance needs (keyed state,
//!   compiled patterns, nested rules); it never runs per row;
//! - an **instance**, [`Transform`](super::Transform), called per value.
//!
//! **What the scheduler may do with an instance:** call it from any rayon thread, on any
//! value, in any order, as often as it likes, and share it between threads (`Send + Sync`).
//! An instance holds no per-row state: its output for a value depends on the secret, the
//! definition, the bound parameters and the value alone. The one state shared between
//! instances is the run's `unique: true` registry (see [`super::unique`]), which is safe to
//! use concurrently and documents the one way order can matter.
//!
//! **The properties, and what they mean for the stages that read them:**
//! - [`Effect`] — what happens to the value. [`Effect::PassThrough`] (`keep`): the pipeline
//!   does not decode the column, a generated column may carry it, `"*": keep` marks columns
//!   reviewed, the report leaves it out. [`Effect::ReplacesWhole`]: the column holds only
//!   outputs, so verification does not scan it for leaks. [`Effect::KeepsPart`] and
//!   [`Effect::Shifts`]: parts of the input (or a value near it) survive; verification scans
//!   such columns.
//! - [`OutputSpace`] — how many outputs a value is drawn from, and whether real data holds
//!   the same values (names, cities: a fake equal to a real value proves nothing).
//!   Verification decides from it which source values to sample, and how many matches chance
//!   explains.
//! - [`Unchanged`] — whether an output can equal its input: never, by chance (about 1 in the
//!   output space), when the parameters or the data allow it, or always.
//! - [`SecretUse`] — whether outputs are keyed by the secret; the refresh refuses to
//!   transform without a secret accordingly ([`TransformDef::requires_secret`]).
//! - [`Fits`] — the column types binding accepts; the error of a mismatch quotes
//!   [`Fits::accepts`].
//! - `elementwise` — whether the instance is applied to each element of an array column (and
//!   sees `char(n)` values without their blank padding), or takes the whole value.
//! - `in_json` — the column type a rule inside a `json` document is bound as (JSON values are
//!   untyped).
//!
//! No module outside this registry names a transform by a string: they ask [`get`] for the
//! definition of a name the user wrote, or use the definitions themselves ([`EMAIL`], …).
//! A test in [`super::tests`] keeps it so.

mod entries;

use std::sync::Arc;

pub use entries::*;

use super::params::Binder;
use super::{BindError, Transform};
use crate::catalog::{ColumnType, TypeKind};

/// The constructor of a transform: binds a rule to one column.
pub(crate) type BindFn = fn(&Binder<'_>) -> Result<Arc<dyn Transform>, BindError>;

/// One transform, as declared.
#[derive(Debug)]
pub struct TransformDef {
    name: &'static str,
    doc: &'static str,
    params: &'static [ParamDef],
    fits: Fits,
    effect: Effect,
    output_space: OutputSpace,
    unchanged: Unchanged,
    secret: SecretUse,
    elementwise: bool,
    in_json: NestedType,
    distinct: Distinct,
    nulls: Nulls,
    examples: &'static [Example],
    bind: BindFn,
}

/// One parameter of a transform (besides the general ones, [`GENERAL`]).
#[derive(Debug)]
pub struct ParamDef {
    pub name: &'static str,
    pub kind: ParamKind,
    pub need: Need,
    /// What the value means, as one line of `docs/rules.md` (markdown).
    pub doc: &'static str,
}

/// What a parameter's value is.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ParamKind {
    /// A string.
    String,
    /// A string, a number or a boolean, read as text (`value: 0` is the text `0`).
    Scalar,
    /// A single character.
    Char,
    /// `true` or `false`.
    Bool,
    /// A whole number from `min` to `max`.
    Whole { min: u64, max: u64 },
    /// A number above 0 and at most `max`.
    Positive { max: f64 },
    /// A list of scalars.
    Values,
    /// A mapping from JSON path to rule.
    Paths,
}

/// Whether a parameter must be written.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Need {
    Required,
    /// May be left out; the transform then does what its doc says.
    Optional,
    /// May be left out for this value.
    Default(DefaultValue),
}

/// The value a parameter left out takes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum DefaultValue {
    Whole(u64),
    Char(char),
}

/// The column types a transform fits.
#[derive(Debug)]
pub struct Fits {
    /// The kinds of value (of each element, for an array) it takes; None for any type.
    kinds: Option<&'static [TypeKind]>,
    /// What the type-mismatch error says it takes.
    pub accepts: &'static str,
}

/// What a transform does to a value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effect {
    /// The value is copied as it is (`keep`).
    PassThrough,
    /// The whole value is replaced by one drawn from its seed, a constant or NULL: the output
    /// carries nothing of the input.
    ReplacesWhole,
    /// The value is moved near itself (`date_shift`, `noise`).
    Shifts,
    /// Parts of the value are kept as they are.
    KeepsPart(Kept),
}

/// Which parts of a value a transform that keeps part of it keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kept {
    /// A few characters at the ends, and the punctuation (`mask`).
    EdgeCharacters,
    /// Whatever its pattern does not match (`regex_replace`).
    Unmatched,
    /// Whatever no path of its rules reaches (`json`, which holds rules by path).
    UnruledPaths,
}

/// How many outputs a value's output is drawn from. The counts are rough, for the default
/// locale `en`; other locales' lists are of the same order or smaller.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum OutputSpace {
    /// Values real data holds too, from lists of real-world words or short digit formats
    /// (first names, cities, postcodes), about `about` of them: a fake equal to a real value
    /// is expected and proves nothing.
    Common { about: f64 },
    /// The values the rule lists (`choice`): as many as it lists, usually real ones.
    Listed,
    /// About `about` outputs, each as specific as a real value (phone numbers, addresses).
    Drawn { about: f64 },
    /// More outputs than any table could meet by chance (10¹⁸ and more: UUIDs, long hashes).
    Unbounded,
    /// One output for every value: the rule's constant, or NULL.
    Fixed,
    /// Derived from the input: as many outputs as inputs, or fewer (`keep`, `mask`,
    /// `regex_replace`, `json`, `date_shift`, `noise`).
    FromInput,
}

/// Whether an output can equal its input, for a value that carries something (not NULL, not
/// empty, not `infinity` or `NaN`, which several transforms keep as they are).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unchanged {
    /// Never (`set_null`, `date_shift`: never a zero shift).
    Never,
    /// Only by chance: about once in [`OutputSpace`] values.
    ByChance,
    /// When the parameters or the data allow it: a pattern that matches nothing, a mask with
    /// nothing left to mask, a value equal to the constant or one of the listed values.
    Possible,
    /// Always (`keep`).
    Always,
}

/// How a transform uses the run's secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecretUse {
    /// Outputs are derived from HMAC(secret, identity, value).
    Keyed,
    /// The rules inside it use the secret as their own definitions say (`json`).
    Nested,
    /// Outputs do not depend on the secret (`constant`, `mask`, `regex_replace`).
    Unkeyed,
    /// Writes nothing derived from a value (`set_null`) or copies it (`keep`).
    Unused,
}

/// Whether distinct inputs give distinct outputs: what a unique index or primary key on a
/// ruled column needs (refresh/constraints.rs refuses a rule that cannot promise it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Distinct {
    /// Always: the output is the input (`keep`).
    Identity,
    /// When the rule says `unique: true` (see [`super::unique`]); the transform's binding
    /// accepts it (for `hash`, from 8 hex digits up).
    OnRequest,
    /// Never promised: too few outputs, or parts of the input kept, or values moved.
    Never,
}

/// What becomes of NULL and of other values, as far as NULL goes: what a NOT NULL column
/// needs ([`super::Catalogue::bind_rule`] refuses a transform that makes values NULL on one).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Nulls {
    /// Every value becomes NULL (`set_null`).
    Always,
    /// NULL stays NULL, and only NULL is NULL.
    FromNull,
    /// Nothing is NULL, NULL included (`constant`).
    Never,
}

/// The column type a rule is bound as inside a JSON document.
#[derive(Debug)]
pub struct NestedType {
    pub type_name: &'static str,
    pub kind: TypeKind,
}

/// An example of `docs/rules.md`: the rule (YAML), the column's type as the page shows it, and
/// the input (None for NULL). The test of the page computes the output.
#[derive(Debug)]
pub struct Example {
    pub rule: &'static str,
    pub column_type: &'static str,
    pub input: Option<&'static str>,
}

/// The parameters every transform takes besides its own.
pub static GENERAL: &[ParamDef] = &[
    ParamDef {
        name: "locale",
        kind: ParamKind::String,
        need: Need::Optional,
        doc: "the locale of the output (see docs/rules.md, Locales); the config's `locale:` when left out",
    },
    ParamDef {
        name: "unique",
        kind: ParamKind::Bool,
        need: Need::Optional,
        doc: "`true`: distinct inputs give distinct outputs",
    },
];

/// The parameter saying that a rule which keeps part of a value may change nothing (see
/// [`TransformDef::must_change_something`]): taken by the transforms that keep part of a
/// value or move it ([`TransformDef::may_change_nothing_by_design`]), and by any rule of a
/// `json` path (the path may reach no document). It is not in
/// [`GENERAL`] (most transforms refuse it) and does not change any output.
pub const MAY_MATCH_NOTHING: &str = "may_match_nothing";

/// How often an output may equal its input by chance, for verification's identity check
/// (refresh/verify.rs): derived from the declarations ([`Effect`], [`OutputSpace`],
/// [`Unchanged`]) and the bound rule, never from a transform's name.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ChanceUnchanged {
    /// The check does not apply: the output does not depend on the input (a constant, or
    /// NULL), so an output equal to its input tells nothing about it.
    NotApplicable,
    /// Each value with this probability (0: never).
    Each(f64),
    /// Per value: a number moved by up to ±`percent` % rounds back to itself when its
    /// last digit's unit is more than the move (see [`noise_chance`]).
    Rounding { percent: f64 },
    /// Per value: only a value with no letter or digit is kept whole (`mask` masks every
    /// letter and digit of a value its ends cover).
    NoAlphanumeric,
    /// Per value, any value may be kept (what a pattern does not match is kept); the
    /// column as a whole must change something (see [`TransformDef::must_change_something`]).
    Any,
}

/// How much smaller than declared a [`OutputSpace::Common`] list can be, in effect: the
/// declared counts are for the locale `en`, other locales' lists are smaller, and real values
/// are not spread evenly over them. The identity check counts chance at this many times
/// 1 / the declared size, so a small list's fakes never look like a leak.
pub const COMMON_SPACE_MARGIN: f64 = 10.0;

/// Every transform, in the order of the documentation.
pub fn all() -> &'static [&'static TransformDef] {
    &ALL
}

/// The definition of the transform named `name` (exactly as written in a rule).
pub fn get(name: &str) -> Option<&'static TransformDef> {
    ALL.iter().copied().find(|def| def.name == name)
}

/// Every transform's name, for did-you-mean hints and listings.
pub fn names() -> impl Iterator<Item = &'static str> {
    ALL.iter().map(|def| def.name)
}

/// The error for a rule naming no transform of the registry, with the nearest name.
pub(crate) fn unknown(name: &str) -> BindError {
    let names: Vec<&str> = names().collect();
    BindError::UnknownTransform {
        name: name.to_string(),
        suggestion: crate::yaml::did_you_mean(name, &names).map(str::to_string),
    }
}

impl TransformDef {
    /// The name rules write.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// One line saying what it does.
    pub fn doc(&self) -> &'static str {
        self.doc
    }

    /// Its own parameters, in the order of the documentation.
    pub fn params(&self) -> &'static [ParamDef] {
        self.params
    }

    pub fn param(&self, name: &str) -> Option<&'static ParamDef> {
        self.params.iter().find(|p| p.name == name)
    }

    /// The column types it fits.
    pub fn fits(&self) -> &Fits {
        &self.fits
    }

    pub fn effect(&self) -> Effect {
        self.effect
    }

    /// True for `keep`: the value is copied as it is, and the column is not even decoded.
    pub fn passes_through(&self) -> bool {
        self.effect == Effect::PassThrough
    }

    /// True when the output carries nothing of the input: a column it rules holds only
    /// outputs.
    pub fn replaces_whole_value(&self) -> bool {
        self.effect == Effect::ReplacesWhole
    }

    /// What it keeps of a value, for transforms that keep part of it.
    pub fn keeps_part(&self) -> Option<Kept> {
        match self.effect {
            Effect::KeepsPart(kept) => Some(kept),
            _ => None,
        }
    }

    /// True for `json`: its `paths` parameter holds rules for the values inside a document.
    pub fn holds_rules_by_path(&self) -> bool {
        self.effect == Effect::KeepsPart(Kept::UnruledPaths)
    }

    pub fn output_space(&self) -> OutputSpace {
        self.output_space
    }

    pub fn unchanged(&self) -> Unchanged {
        self.unchanged
    }

    pub fn secret(&self) -> SecretUse {
        self.secret
    }

    /// True when its outputs are derived from the secret (pseudonyms).
    pub fn keyed(&self) -> bool {
        self.secret == SecretUse::Keyed
    }

    /// True when a refresh refuses a rule of this transform without `secret:` in the config.
    /// That is every transform that writes values, keyed or not — a rules file that transforms
    /// data without a secret is refused whole, as it always was — but not `set_null` (it
    /// writes nothing) nor `keep` (it copies).
    pub fn requires_secret(&self) -> bool {
        self.secret != SecretUse::Unused
    }

    /// True when an array column gets the instance applied to each element (and `char(n)`
    /// values reach it without their padding); false for the transforms that take the whole
    /// value (`keep`, `set_null`, `constant`).
    pub fn elementwise(&self) -> bool {
        self.elementwise
    }

    /// The column type a rule of this transform inside a JSON document is bound as.
    pub fn json_value_type(&self) -> ColumnType {
        ColumnType::simple(self.in_json.type_name, self.in_json.kind.clone())
    }

    /// How often an output of a rule of this transform (as written: `spec`) equals its input
    /// by chance ([`ChanceUnchanged`]).
    pub fn chance_unchanged(&self, spec: &super::RuleSpec) -> ChanceUnchanged {
        match (self.unchanged, self.effect, self.output_space) {
            (Unchanged::Always, ..) | (_, _, OutputSpace::Fixed) => ChanceUnchanged::NotApplicable,
            (Unchanged::Never, ..) => ChanceUnchanged::Each(0.0),
            (_, Effect::Shifts, _) => match spec.params.get("percent").and_then(|v| v.as_f64()) {
                Some(percent) => ChanceUnchanged::Rounding { percent },
                None => ChanceUnchanged::Any,
            },
            (_, Effect::KeepsPart(Kept::EdgeCharacters), _) => ChanceUnchanged::NoAlphanumeric,
            (_, Effect::KeepsPart(_), _) => ChanceUnchanged::Any,
            // One of the listed values, picked by the value's seed: 1 in as many as listed.
            (_, _, OutputSpace::Listed) => {
                let listed = match spec.params.get("values") {
                    Some(serde_yaml::Value::Sequence(items)) => items.len().max(1),
                    _ => 1,
                };
                ChanceUnchanged::Each(1.0 / listed as f64)
            }
            (_, _, OutputSpace::Common { about }) => {
                ChanceUnchanged::Each((COMMON_SPACE_MARGIN / about).min(1.0))
            }
            (_, _, space) => match space.distinct_outputs() {
                Some(n) if n.is_finite() && n >= 1.0 => ChanceUnchanged::Each(1.0 / n),
                Some(_) => ChanceUnchanged::Each(0.0),
                None => ChanceUnchanged::Any,
            },
        }
    }

    /// The outputs a rule of this transform (as written: `spec`) draws from, as text, when
    /// they are listed in the rule ([`OutputSpace::Listed`]) and the rule does not say
    /// `allow_own_values: true`: verification counts the inputs among them, since a rule
    /// whose listed values are the column's own values passes the identity check by chance
    /// alone (see [`OWN_VALUES_SHARE`]).
    pub fn listed_outputs(&self, spec: &super::RuleSpec) -> Option<Vec<String>> {
        if self.output_space != OutputSpace::Listed
            || matches!(
                spec.params.get(ALLOW_OWN_VALUES),
                Some(serde_yaml::Value::Bool(true))
            )
        {
            return None;
        }
        match spec.params.get("values") {
            Some(serde_yaml::Value::Sequence(items)) => Some(
                items
                    .iter()
                    .filter_map(super::params::scalar_text)
                    .collect(),
            ),
            _ => None,
        }
    }

    /// True when a rule of this transform is meant to change part of a value and should
    /// change some value of a column it rules (or reach some document, for a `json` path):
    /// the transforms that keep part of a value, unless the rule says
    /// `may_match_nothing: true`.
    pub fn must_change_something(&self, spec: &super::RuleSpec) -> bool {
        self.may_change_nothing_by_design() && !may_match_nothing(spec)
    }

    /// True when a rule of this transform can change no value of a column without being
    /// broken: it keeps part of a value (a pattern that matched nothing tonight), or moves it
    /// near itself (`noise` on numbers too small to move). Such a rule must change something,
    /// or say `may_match_nothing: true` (which only these rules take).
    pub fn may_change_nothing_by_design(&self) -> bool {
        self.keeps_part().is_some() || self.effect == Effect::Shifts
    }

    /// Whether distinct inputs give distinct outputs ([`Distinct`]).
    pub fn distinct(&self) -> Distinct {
        self.distinct
    }

    /// Where its outputs are NULL ([`Nulls`]).
    pub fn nulls(&self) -> Nulls {
        self.nulls
    }

    /// Its examples in `docs/rules.md`.
    pub fn examples(&self) -> &'static [Example] {
        self.examples
    }

    pub(crate) fn constructor(&self) -> BindFn {
        self.bind
    }
}

/// The parameter of a rule drawing from listed values ([`OutputSpace::Listed`]) saying that
/// the listed values may be the column's own values (a category shuffled among its own
/// categories): without it, verification fails a run where more than
/// [`OWN_VALUES_SHARE`] of a column's inputs are among the rule's listed values (see
/// [`TransformDef::listed_outputs`]). It does not change any output.
pub const ALLOW_OWN_VALUES: &str = "allow_own_values";

/// The share of a column's inputs that may be among its rule's listed values before
/// verification calls the rule a draw from the column's own values: such a rule keeps each
/// row's value 1 time in as many as it lists, indistinguishably from chance, and rows that
/// shared a value share its output. Invented values meet real ones rarely; a list that holds
/// the column's categories meets nearly every input.
pub const OWN_VALUES_SHARE: f64 = 0.01;

/// True when the rule says `may_match_nothing: true`.
pub fn may_match_nothing(spec: &super::RuleSpec) -> bool {
    matches!(
        spec.params.get(MAY_MATCH_NOTHING),
        Some(serde_yaml::Value::Bool(true))
    )
}

/// The chance that noise of ±`percent` % leaves `value` (a number as text) as it is: the
/// move spans about `2·|value|·percent/100` units of its last digit, so 1 in that many + 1.
/// Values that do not read as a decimal number count as kept (1).
pub fn noise_chance(value: &str, percent: f64) -> f64 {
    let v = value.trim();
    let Ok(number) = v.parse::<f64>() else {
        return 1.0;
    };
    if !number.is_finite() {
        return 1.0;
    }
    let mantissa = v.split(['e', 'E']).next().unwrap_or(v);
    let decimals = mantissa.split_once('.').map_or(0, |(_, d)| d.len()) as i32;
    let units = number.abs() * percent / 100.0 * 10f64.powi(decimals);
    1.0 / (2.0 * units.floor() + 1.0)
}

impl Fits {
    /// Any column type.
    pub const ANY: Fits = Fits {
        kinds: None,
        accepts: "any type",
    };

    /// True when a column (or array element) of `kind` fits.
    pub fn kind(&self, kind: &TypeKind) -> bool {
        self.kinds.is_none_or(|kinds| kinds.contains(kind))
    }
}

impl OutputSpace {
    /// About how many distinct outputs there are: infinite for [`OutputSpace::Unbounded`],
    /// one for [`OutputSpace::Fixed`], None when the rule or the input decides.
    pub fn distinct_outputs(&self) -> Option<f64> {
        match self {
            OutputSpace::Common { about } | OutputSpace::Drawn { about } => Some(*about),
            OutputSpace::Unbounded => Some(f64::INFINITY),
            OutputSpace::Fixed => Some(1.0),
            OutputSpace::Listed | OutputSpace::FromInput => None,
        }
    }

    /// True when real data holds the same values (names, places, the rule's own list): a fake
    /// equal to a real value proves nothing.
    pub fn shares_real_values(&self) -> bool {
        matches!(self, OutputSpace::Common { .. } | OutputSpace::Listed)
    }
}

impl ParamDef {
    /// The declared range of a whole-number parameter.
    pub fn whole_range(&self) -> Option<(u64, u64)> {
        match self.kind {
            ParamKind::Whole { min, max } => Some((min, max)),
            _ => None,
        }
    }

    /// The parameter's row in the parameter table of `docs/rules.md`.
    pub fn doc_row(&self) -> String {
        let need = match self.need {
            Need::Required => "yes".to_string(),
            Need::Optional => "no".to_string(),
            Need::Default(DefaultValue::Whole(n)) => format!("no ({n})"),
            Need::Default(DefaultValue::Char(c)) => format!("no (`{c}`)"),
        };
        format!("| `{}` | {need} | {} |", self.name, self.doc)
    }
}

impl PartialEq for TransformDef {
    /// Definitions are static: two are the same when they are one.
    fn eq(&self, other: &TransformDef) -> bool {
        std::ptr::eq(self, other)
    }
}

impl Eq for TransformDef {}

#[cfg(test)]
mod tests {
    use super::super::tests::{SECRET, catalogue, col, doc_type, spec};
    use super::*;
    use crate::transform::RuleSpec;

    #[test]
    fn every_definition_is_listed_once_and_found_by_its_name() {
        let mut seen = std::collections::HashSet::new();
        for def in all() {
            assert!(seen.insert(def.name()), "`{}` is listed twice", def.name());
            assert_eq!(get(def.name()), Some(*def));
            assert!(!def.doc().is_empty(), "`{}` has no doc", def.name());
        }
        assert_eq!(get("emial"), None);
        assert_eq!(
            unknown("emial").to_string(),
            "unknown transform `emial`, did you mean `email`?"
        );
    }

    /// Binding accepts exactly the declared parameters: each is used by an example of its
    /// transform (and the examples bind, see `doc_examples_are_current`), a required one
    /// left out is reported missing, and an undeclared one is refused with the declared list.
    #[test]
    fn binding_takes_the_declared_parameters() {
        let cat = catalogue(SECRET);
        for def in all() {
            let example = &def.examples()[0];
            let ty = doc_type(example.column_type);
            let written = spec(example.rule);
            for param in def.params() {
                assert!(
                    def.examples()
                        .iter()
                        .any(|e| spec(e.rule).params.contains_key(param.name)),
                    "no example of `{}` uses `{}`",
                    def.name(),
                    param.name
                );
                if param.need == Need::Required {
                    let mut without = written.clone();
                    without.params.remove(param.name);
                    assert_eq!(
                        cat.bind(&without, &col(&ty)).err(),
                        Some(BindError::MissingParam {
                            transform: def.name().to_string(),
                            param: param.name.to_string(),
                        }),
                        "`{}` without `{}`",
                        def.name(),
                        param.name
                    );
                }
            }
            let mut expected: Vec<String> = def
                .params()
                .iter()
                .chain(GENERAL)
                .map(|p| p.name.to_string())
                .collect();
            expected.sort();
            assert_eq!(
                cat.bind(&written.clone().with("bogus", 1), &col(&ty)).err(),
                Some(BindError::UnknownParam {
                    transform: def.name().to_string(),
                    param: "bogus".to_string(),
                    expected,
                }),
                "`{}`",
                def.name()
            );
        }
    }

    /// A transform that does not fit every type is refused on a type it does not fit, with
    /// the declared description of what it takes.
    #[test]
    fn binding_checks_the_declared_types() {
        let cat = catalogue(SECRET);
        let boolean = ColumnType::simple("boolean", TypeKind::Bool);
        for def in all() {
            let example = &def.examples()[0];
            assert!(
                def.fits().kind(&doc_type(example.column_type).kind),
                "`{}`'s example is on a type it does not fit",
                def.name()
            );
            if def.fits().kind(&TypeKind::Bool) {
                continue;
            }
            assert_eq!(
                cat.bind(&spec(example.rule), &col(&boolean)).err(),
                Some(BindError::TypeMismatch {
                    transform: def.name().to_string(),
                    type_name: "boolean".to_string(),
                    accepts: def.fits().accepts.to_string(),
                }),
                "`{}`",
                def.name()
            );
        }
        assert!(
            cat.bind(&RuleSpec::named("keep"), &col(&boolean)).is_ok(),
            "keep fits any type"
        );
    }

    /// The declared [`Distinct`] and [`Nulls`] are what binding and the instances do: a
    /// transform that promises distinct outputs (on request or always) binds with
    /// `unique: true`, one that does not is refused it (except `set_null`, whose NULLs never
    /// clash); one that makes every value NULL is refused on a NOT NULL column; `Never` NULL
    /// turns NULL into a value.
    #[test]
    fn distinct_and_nulls_are_what_binding_and_instances_do() {
        let cat = catalogue(SECRET);
        for def in all() {
            let example = &def.examples()[0];
            let ty = doc_type(example.column_type);
            let unique = spec(example.rule).with("unique", true);
            let promised = matches!(def.distinct(), Distinct::Identity | Distinct::OnRequest);
            assert_eq!(
                cat.bind(&unique, &col(&ty)).is_ok(),
                promised || def.nulls() == Nulls::Always,
                "`{}` with unique: true",
                def.name()
            );
            assert_eq!(def.distinct() == Distinct::Identity, def.passes_through());
            let not_null = crate::transform::ColumnInfo {
                ty: &ty,
                not_null: true,
            };
            assert_eq!(
                cat.bind(&spec(example.rule), &not_null).is_err(),
                def.nulls() == Nulls::Always,
                "`{}` on a NOT NULL column",
                def.name()
            );
            let bound = cat.bind(&spec(example.rule), &col(&ty)).unwrap();
            let mut out = String::new();
            let from_null = bound.apply_null(&mut out).unwrap();
            assert_eq!(
                from_null == crate::transform::Output::Null,
                def.nulls() != Nulls::Never,
                "`{}` on NULL",
                def.name()
            );
        }
    }

    #[test]
    fn properties_hold_together() {
        for def in all() {
            if def.passes_through() {
                assert_eq!(def.unchanged(), Unchanged::Always, "`{}`", def.name());
                assert!(
                    !def.requires_secret() && !def.elementwise(),
                    "`{}`",
                    def.name()
                );
            }
            if def.keyed() {
                assert!(def.requires_secret(), "`{}`", def.name());
                assert_ne!(def.output_space(), OutputSpace::Fixed, "`{}`", def.name());
            }
            assert_eq!(
                def.holds_rules_by_path(),
                def.secret() == SecretUse::Nested,
                "`{}`",
                def.name()
            );
        }
        // Issue 13: the identity check's chance follows the declarations.
        for def in all() {
            let spec = super::super::tests::spec(def.examples()[0].rule);
            let chance = def.chance_unchanged(&spec);
            match def.unchanged() {
                Unchanged::Never if def.output_space() != OutputSpace::Fixed => {
                    assert_eq!(chance, ChanceUnchanged::Each(0.0), "`{}`", def.name())
                }
                Unchanged::ByChance => assert!(
                    matches!(chance, ChanceUnchanged::Each(p) if p < 0.05),
                    "`{}`: {chance:?}",
                    def.name()
                ),
                _ => assert_ne!(chance, ChanceUnchanged::Each(0.0), "`{}`", def.name()),
            }
            assert_eq!(
                def.must_change_something(&spec),
                def.keeps_part().is_some() || def.effect() == Effect::Shifts,
                "`{}`",
                def.name()
            );
        }
        assert!(!SET_NULL.requires_secret());
        assert!(CONSTANT.requires_secret() && !CONSTANT.keyed());
        assert_eq!(IPV4.output_space().distinct_outputs(), Some(3.5e9));
        assert!(FIRST_NAME.output_space().shares_real_values());
        assert_eq!(MASK.keeps_part(), Some(Kept::EdgeCharacters));
    }
}
