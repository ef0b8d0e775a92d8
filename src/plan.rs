//! The sampling planner: which rows of each table reach staging. From the sample specs of
//! `restage.yaml`, the foreign-key graph and `max_storage`, it decides per table: the whole
//! table, nothing (schema only), a window, or a subset that keeps every foreign key valid.
//! Deciding is pure (no database); the key pass that turns decisions into key sets runs in
//! the refresh pipeline.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::catalog::{Catalog, QualifiedName};
use crate::refresh::rows::RowFilter;

/// How a table's rows are chosen.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Decision {
    /// Every row.
    Whole,
    /// No row (`rows: 0`): the table exists in staging, empty.
    Empty,
}

/// The plan for one table that holds rows.
#[derive(Debug, Clone)]
pub struct TablePlan {
    pub table: QualifiedName,
    pub decision: Decision,
    /// Why, in words: `whole`, `root: percent 10`, `follows public.users via orders_user_id_fkey`.
    pub reason: String,
    pub estimated_rows: u64,
    pub estimated_bytes: u64,
    /// Row filter applied in the transform stage.
    pub filter: Option<Arc<dyn RowFilter>>,
    /// Condition pushed down to the source query.
    pub source_where: Option<String>,
}

/// The plan for every table that holds rows.
#[derive(Debug, Clone, Default)]
pub struct Plan {
    pub tables: BTreeMap<QualifiedName, TablePlan>,
}

/// The planner's row estimate for a table, never negative (-1 means never analyzed: guess
/// from the size at ~100 bytes a row).
pub fn estimated_rows(table: &crate::catalog::Table) -> u64 {
    if table.estimated_rows >= 0.0 {
        table.estimated_rows as u64
    } else {
        table.bytes / 100
    }
}

impl Plan {
    /// Every table whole: the plan without a `sample:` section.
    pub fn whole(catalog: &Catalog) -> Plan {
        let tables = catalog
            .data_tables()
            .map(|t| {
                (
                    t.name.clone(),
                    TablePlan {
                        table: t.name.clone(),
                        decision: Decision::Whole,
                        reason: "whole".to_string(),
                        estimated_rows: estimated_rows(t),
                        estimated_bytes: t.bytes,
                        filter: None,
                        source_where: None,
                    },
                )
            })
            .collect();
        Plan { tables }
    }
}
