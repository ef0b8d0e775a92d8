//! A testing hook, inert unless `RESTAGE_TEST_PAUSE_AT` is set: it lets the fault tests stop a
//! refresh at an exact point, then kill it (SIGKILL), interrupt it (SIGINT, SIGTERM), cut its
//! connections, or let it go on.
//!
//! `RESTAGE_TEST_PAUSE_AT=<point>[,<point>…]` makes the refresh print
//! `restage: paused at <point>` on stderr when it reaches that point, then wait there until it
//! receives SIGUSR1. Each point pauses at most once per process. The points, in pipeline order:
//!
//! | point | where |
//! |---|---|
//! | `plan` | lock held, snapshot open, plan made; nothing created yet |
//! | `created` | the new database exists (its name reserved in the registry), its oid not yet recorded |
//! | `pre-data` | pre-data schema restored |
//! | `data` | inside a table's COPY: its first batch written, `COPY FROM` not finished |
//! | `data-done` | every table copied and the per-table builds of the copy done ([`super::post_data`]), the rest of post-data not started |
//! | `post-data` | the first index or key build started, not finished: a table's, during the copy ([`super::post_data`]), or pg_restore's of the rest after it (the other builds and the copy go on meanwhile) |
//! | `post-data-restore` | pg_restore of the post-data left after the copy's per-table builds started, not finished (not reached when nothing is left) |
//! | `before-verify` | the new database complete, verification not started |
//! | `before-swap` | verified; the swap not started |
//! | `swap` | inside the swap: the live database refuses connections, the renames not done (a signal here ends the run, staging unchanged) |
//! | `commit` | inside the swap: renamed in the open transaction, COMMIT not sent (a signal here waits for the commit) |
//! | `warm` | swapped; cache warming not started |
//! | `dump-data` | `restage dump`: a batch of the first part written into the run's area (a `.partial-*` folder, or S3), the part not finished |
//! | `copy` | `restage copy`: the live database refuses connections, its sessions not yet ended, CREATE DATABASE not started |
//!
//! Production runs never set the variable; without it, [`point`] returns at once.

use std::collections::HashSet;
use std::sync::{Mutex, OnceLock};

/// The variable that names the points to pause at.
pub const VAR: &str = "RESTAGE_TEST_PAUSE_AT";

fn wanted() -> &'static HashSet<String> {
    static WANTED: OnceLock<HashSet<String>> = OnceLock::new();
    WANTED.get_or_init(|| {
        std::env::var(VAR)
            .map(|v| {
                v.split(',')
                    .map(|s| s.trim().to_string())
                    .filter(|s| !s.is_empty())
                    .collect()
            })
            .unwrap_or_default()
    })
}

/// Pauses at `name` if the hook asks for it (see the module doc); otherwise returns at once.
pub async fn point(name: &'static str) {
    if !wanted().contains(name) {
        return;
    }
    static DONE: Mutex<Vec<&'static str>> = Mutex::new(Vec::new());
    {
        let Ok(mut done) = DONE.lock() else { return };
        if done.contains(&name) {
            return;
        }
        done.push(name);
    }
    use tokio::signal::unix::{SignalKind, signal};
    // Listen before saying so: the test may send SIGUSR1 as soon as it reads the line.
    let mut resume = signal(SignalKind::user_defined1()).ok();
    crate::output::errln!("restage: paused at {name} (testing hook {VAR}; SIGUSR1 resumes)");
    match resume.as_mut() {
        Some(s) => {
            s.recv().await;
        }
        None => std::future::pending::<()>().await,
    }
    crate::output::errln!("restage: resumed at {name}");
}
