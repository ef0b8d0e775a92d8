//! Helpers for the transforms' unit tests, and the tests that cut across families: every
//! transform on NULL, empty strings, arrays and non-ASCII text; determinism across catalogues
//! and secrets; the hard-coded outputs that pin the output contract; the documented examples.

use std::sync::{Arc, LazyLock};

use super::*;
use crate::catalog::{ColumnType, TypeKind};

pub(crate) const SECRET: &str = "test-secret-0123456789";

pub(crate) fn catalogue(secret: &str) -> Catalogue {
    Catalogue::new(&Secret::new(secret), "en")
}

pub(crate) fn ty(name: &str, kind: TypeKind) -> ColumnType {
    ColumnType::simple(name, kind)
}

pub(crate) fn array_of(name: &str, kind: TypeKind) -> ColumnType {
    let mut t = ColumnType::simple(name, kind);
    t.array = true;
    t
}

static TEXT: LazyLock<ColumnType> = LazyLock::new(|| ty("text", TypeKind::Text));

pub(crate) fn text_col() -> ColumnInfo<'static> {
    ColumnInfo {
        ty: &TEXT,
        not_null: false,
    }
}

pub(crate) fn col(ty: &ColumnType) -> ColumnInfo<'_> {
    ColumnInfo {
        ty,
        not_null: false,
    }
}

pub(crate) fn bind_on(
    spec: &RuleSpec,
    ty: &ColumnType,
    not_null: bool,
) -> Result<Arc<dyn Transform>, BindError> {
    catalogue(SECRET).bind(spec, &ColumnInfo { ty, not_null })
}

/// The message of the error binding `spec` gives.
pub(crate) fn bind_err(spec: &RuleSpec, column: &ColumnInfo<'_>) -> String {
    match catalogue(SECRET).bind(spec, column) {
        Ok(t) => panic!("binding {spec:?} succeeded: {t:?}"),
        Err(e) => e.to_string(),
    }
}

/// Parses a rule written in YAML.
pub(crate) fn spec(yaml: &str) -> RuleSpec {
    let value: serde_yaml::Value = serde_yaml::from_str(yaml).expect("test YAML");
    RuleSpec::from_value(&value).expect("test rule")
}

/// Applies `t`; None for NULL. Panics on a transform error.
pub(crate) fn apply(t: &dyn Transform, value: &str) -> Option<String> {
    let mut out = String::new();
    match t.apply(value, &mut out) {
        Ok(Output::Value) => Some(out),
        Ok(Output::Null) => None,
        Err(e) => panic!("transform error: {e}"),
    }
}

pub(crate) fn apply_null(t: &dyn Transform) -> Option<String> {
    let mut out = String::new();
    match t.apply_null(&mut out).expect("apply_null") {
        Output::Value => Some(out),
        Output::Null => None,
    }
}

/// Binds `rule` (YAML) on a text column of a catalogue with `secret` and applies it.
pub(crate) fn fake_with(secret: &str, rule: &str, value: &str) -> String {
    let t = catalogue(secret)
        .bind(&spec(rule), &text_col())
        .expect("bind");
    apply(&*t, value).expect("a value")
}
