//! The sampling planner: from the foreign-key graph, the sample specs and `max_storage` to the
//! rows each table keeps. Pure: no database access.
