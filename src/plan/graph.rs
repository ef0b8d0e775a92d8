//! The foreign-key graph between logical tables (a partitioned table and its partitions are one
//! node, named by the partitioned table), and which tables a sample touches.
//!
//! A table is *subsetted* when it has a sample spec (a root), or when it references a
//! subsetted table (it follows: its rows are kept only when the rows they reference are).
//! Everything else is copied whole — including tables that subsetted rows reference (a
//! products catalogue stays complete).

use std::collections::{BTreeMap, BTreeSet};

use crate::catalog::{Catalog, QualifiedName};
use crate::config::{Dangling, Orphans};

/// A foreign key between logical tables.
#[derive(Debug, Clone, PartialEq)]
pub struct Edge {
    pub fk: String,
    /// The logical table holding the reference.
    pub child: QualifiedName,
    /// The table the constraint is declared on (the child, or one of its partitions).
    pub declared_on: QualifiedName,
    pub child_columns: Vec<String>,
    pub parent: QualifiedName,
    pub parent_columns: Vec<String>,
    /// Every referencing column accepts NULL.
    pub nullable: bool,
    pub dangling: Dangling,
    /// What happens to rows whose reference through it is NULL (when it gates).
    pub orphans: Orphans,
}

/// Why a table's rows are what they are.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Reason {
    /// Its own sample spec.
    Root,
    /// It references a subsetted table.
    Follows { parent: QualifiedName, fk: String },
}

#[derive(Debug, Clone, Default)]
pub struct Graph {
    pub edges: Vec<Edge>,
}

impl Graph {
    /// Builds the graph from the catalog. `dangling` and `orphans` are the default policies,
    /// `overrides` and `orphan_overrides` the per-constraint ones (by constraint name).
    pub fn from_catalog(
        catalog: &Catalog,
        dangling: Dangling,
        overrides: &BTreeMap<String, Dangling>,
        orphans: Orphans,
        orphan_overrides: &BTreeMap<String, Orphans>,
    ) -> Graph {
        let edges = catalog
            .foreign_keys
            .iter()
            .map(|fk| Edge {
                fk: fk.name.clone(),
                child: catalog.root_of(&fk.table),
                declared_on: fk.table.clone(),
                child_columns: fk.columns.clone(),
                parent: catalog.root_of(&fk.referenced),
                parent_columns: fk.referenced_columns.clone(),
                nullable: fk.nullable,
                dangling: overrides.get(&fk.name).copied().unwrap_or(dangling),
                orphans: orphan_overrides.get(&fk.name).copied().unwrap_or(orphans),
            })
            .collect();
        Graph { edges }
    }

    /// The subsetted tables and why, given the roots. Follows are found breadth-first, so the
    /// reason names the nearest subsetted parent.
    pub fn subsetted(&self, roots: &BTreeSet<QualifiedName>) -> BTreeMap<QualifiedName, Reason> {
        let mut out: BTreeMap<QualifiedName, Reason> =
            roots.iter().map(|r| (r.clone(), Reason::Root)).collect();
        loop {
            let mut added = Vec::new();
            for e in &self.edges {
                if out.contains_key(&e.parent)
                    && !out.contains_key(&e.child)
                    && !added.iter().any(|(c, _)| c == &e.child)
                {
                    added.push((
                        e.child.clone(),
                        Reason::Follows {
                            parent: e.parent.clone(),
                            fk: e.fk.clone(),
                        },
                    ));
                }
            }
            if added.is_empty() {
                return out;
            }
            out.extend(added);
        }
    }

    /// Edges from `table` to subsetted parents.
    pub fn outgoing<'a>(
        &'a self,
        table: &'a QualifiedName,
        subsetted: &'a BTreeMap<QualifiedName, Reason>,
    ) -> impl Iterator<Item = (usize, &'a Edge)> {
        self.edges
            .iter()
            .enumerate()
            .filter(move |(_, e)| &e.child == table && subsetted.contains_key(&e.parent))
    }

    /// Strongly connected components of the reference graph: tables that reach each other
    /// through references (a self-reference, a cycle). Returns each table's component number.
    pub fn components(&self) -> BTreeMap<QualifiedName, usize> {
        // Tarjan's algorithm, iteratively over a small graph.
        let mut nodes: Vec<QualifiedName> = Vec::new();
        for e in &self.edges {
            for n in [&e.child, &e.parent] {
                if !nodes.contains(n) {
                    nodes.push(n.clone());
                }
            }
        }
        let index_of = |n: &QualifiedName| nodes.iter().position(|x| x == n).unwrap_or(0);
        let adjacency: Vec<Vec<usize>> = (0..nodes.len())
            .map(|i| {
                self.edges
                    .iter()
                    .filter(|e| index_of(&e.child) == i)
                    .map(|e| index_of(&e.parent))
                    .collect()
            })
            .collect();
        struct State {
            index: Vec<Option<usize>>,
            low: Vec<usize>,
            on_stack: Vec<bool>,
            stack: Vec<usize>,
            next: usize,
            component: Vec<usize>,
            components: usize,
        }
        fn strong(v: usize, adj: &[Vec<usize>], s: &mut State) {
            s.index[v] = Some(s.next);
            s.low[v] = s.next;
            s.next += 1;
            s.stack.push(v);
            s.on_stack[v] = true;
            for &w in &adj[v] {
                match s.index[w] {
                    None => {
                        strong(w, adj, s);
                        s.low[v] = s.low[v].min(s.low[w]);
                    }
                    Some(iw) if s.on_stack[w] => s.low[v] = s.low[v].min(iw),
                    _ => {}
                }
            }
            if Some(s.low[v]) == s.index[v] {
                while let Some(w) = s.stack.pop() {
                    s.on_stack[w] = false;
                    s.component[w] = s.components;
                    if w == v {
                        break;
                    }
                }
                s.components += 1;
            }
        }
        let n = nodes.len();
        let mut state = State {
            index: vec![None; n],
            low: vec![0; n],
            on_stack: vec![false; n],
            stack: Vec::new(),
            next: 0,
            component: vec![0; n],
            components: 0,
        };
        for v in 0..n {
            if state.index[v].is_none() {
                strong(v, &adjacency, &mut state);
            }
        }
        nodes.into_iter().zip(state.component).collect()
    }

    /// The references that *gate* (a row is kept only when the row it points at is): every
    /// `drop` reference to a subsetted table in another component, and inside a component
    /// (a cycle) the reference through which the subset reached the table. The others — a
    /// self-reference, the way back around a cycle — *pull* instead: the row they point at is
    /// kept because a kept row needs it.
    pub fn gating(
        &self,
        subsetted: &BTreeMap<QualifiedName, Reason>,
    ) -> std::collections::BTreeSet<usize> {
        let components = self.components();
        let component = |n: &QualifiedName| components.get(n).copied();
        self.edges
            .iter()
            .enumerate()
            .filter(|(_, e)| e.dangling == Dangling::Drop && subsetted.contains_key(&e.parent))
            .filter(|(_, e)| {
                if e.child == e.parent {
                    return false;
                }
                if component(&e.child) != component(&e.parent) {
                    return true;
                }
                matches!(subsetted.get(&e.child), Some(Reason::Follows { fk, .. }) if *fk == e.fk)
            })
            .map(|(i, _)| i)
            .collect()
    }

    /// True when a subsetted table references `table`.
    pub fn referenced_by_subsetted(
        &self,
        table: &QualifiedName,
        subsetted: &BTreeMap<QualifiedName, Reason>,
    ) -> bool {
        self.edges
            .iter()
            .any(|e| &e.parent == table && subsetted.contains_key(&e.child))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(n: &str) -> QualifiedName {
        QualifiedName::new("public", n)
    }

    fn edge(child: &str, parent: &str) -> Edge {
        Edge {
            fk: format!("{child}_{parent}_fkey"),
            child: q(child),
            declared_on: q(child),
            child_columns: vec![format!("{parent}_id")],
            parent: q(parent),
            parent_columns: vec!["id".into()],
            nullable: true,
            dangling: Dangling::Drop,
            orphans: Orphans::Sample,
        }
    }

    #[test]
    fn follows_children_transitively_not_parents() {
        // order_items → orders → users ← events; order_items → products.
        let g = Graph {
            edges: vec![
                edge("orders", "users"),
                edge("order_items", "orders"),
                edge("order_items", "products"),
                edge("events", "users"),
            ],
        };
        let roots = BTreeSet::from([q("users")]);
        let s = g.subsetted(&roots);
        assert_eq!(s[&q("users")], Reason::Root);
        assert_eq!(
            s[&q("orders")],
            Reason::Follows {
                parent: q("users"),
                fk: "orders_users_fkey".into()
            }
        );
        assert!(s.contains_key(&q("order_items")));
        assert!(s.contains_key(&q("events")));
        assert!(
            !s.contains_key(&q("products")),
            "a referenced catalogue stays whole"
        );
        assert!(g.referenced_by_subsetted(&q("orders"), &s));
        assert!(!g.referenced_by_subsetted(&q("events"), &s));
    }

    #[test]
    fn gating_and_pulling_references() {
        // users ← users (self), users ← orders, teams ⇄ members (members reached via team_id).
        let mut members_team = edge("members", "teams");
        members_team.fk = "members_team_id_fkey".into();
        let mut teams_captain = edge("teams", "members");
        teams_captain.fk = "teams_captain_id_fkey".into();
        let g = Graph {
            edges: vec![
                edge("users", "users"),
                edge("orders", "users"),
                members_team,
                teams_captain,
            ],
        };
        let s = g.subsetted(&BTreeSet::from([q("users"), q("teams")]));
        let gating = g.gating(&s);
        assert!(!gating.contains(&0), "a self-reference pulls");
        assert!(gating.contains(&1), "a child gates on its parent");
        assert!(
            gating.contains(&2),
            "inside a cycle, the way the subset came gates"
        );
        assert!(!gating.contains(&3), "the way back around the cycle pulls");
        let c = g.components();
        assert_eq!(c[&q("teams")], c[&q("members")]);
        assert_ne!(c[&q("users")], c[&q("orders")]);
    }

    #[test]
    fn cycles_terminate() {
        let g = Graph {
            edges: vec![edge("a", "b"), edge("b", "a"), edge("a", "a")],
        };
        let s = g.subsetted(&BTreeSet::from([q("a")]));
        assert_eq!(s.len(), 2);
    }
}
