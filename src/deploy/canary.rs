//! Canary: the canary instances get the new version and pass their gate; then the canary's
//! share of traffic goes through `steps`, and at each the analysis window is watched: error
//! rate and p99 latency from the metrics endpoint, as deltas from the start of the step. A
//! step fails as soon as a limit is exceeded (waiting out the window would only expose more
//! users), or at the end of the window when fewer than `min_requests` were seen. After the
//! last step the other instances are updated and gated. A failure anywhere sets the canary's
//! traffic to 0 and returns every touched instance to the previous version.

use std::time::{Duration, Instant};

use crate::deploy::command::Placeholder;
use crate::deploy::deployment::Deployment;
use crate::deploy::gate::Instance;
use crate::deploy::metrics::{self, Snapshot, Window};
use crate::deploy::plan::{Analysis, vars_for};
use crate::http::{self, Url};
use crate::units::{format_duration, format_percent};

/// Largest metrics page read.
const MAX_METRICS_BODY: usize = 16 * 1024 * 1024;

pub async fn deploy(d: &mut Deployment<'_>) -> Result<String, String> {
    let plan = d.plan;
    let Some(canary) = plan.canary.as_ref() else {
        return Err("deploy.canary is missing".to_string());
    };
    let version = d.version.clone();
    let mut touched: Vec<Instance> = canary.instances.clone();
    let mut traffic_moved = false;

    let failure = 'deploy: {
        for r in d.update_and_gate(&canary.instances, &version, None).await {
            if let Err(e) = r.result {
                break 'deploy Some(format!("canary {e}"));
            }
        }
        for &percent in &canary.steps {
            let vars = d
                .vars(&version)
                .set(Placeholder::Percent, percent.to_string());
            traffic_moved = true;
            if let Err(e) = d
                .run_command(&canary.traffic, vars, "traffic", format!("{percent}%"))
                .await
            {
                break 'deploy Some(format!("step {percent}%: {e}"));
            }
            let analysis = analyze(&canary.analysis, &canary.instances, plan.gate.timeout).await;
            let ok = analysis.is_ok();
            let detail = match &analysis {
                Ok(d) | Err(d) => d.clone(),
            };
            d.record(
                "analysis",
                Some(format!("{percent}%")),
                ok,
                detail.clone(),
                None,
            );
            if !ok {
                break 'deploy Some(format!("step {percent}%: {detail}"));
            }
        }
        let rest: Vec<Instance> = plan
            .instances
            .iter()
            .filter(|i| !canary.instances.contains(i))
            .cloned()
            .collect();
        let batch = if plan.rolling_configured {
            plan.rolling.batch_size.max(1)
        } else {
            rest.len().max(1)
        };
        for chunk in rest.chunks(batch) {
            touched.extend(chunk.iter().cloned());
            for r in d.update_and_gate(chunk, &version, None).await {
                if let Err(e) = r.result {
                    break 'deploy Some(format!("promotion: {e}"));
                }
            }
        }
        None
    };

    let Some(error) = failure else {
        return Ok(format!(
            "canary passed {} step(s); {} instance(s) on {version}",
            canary.steps.len(),
            touched.len()
        ));
    };
    if d.may_roll_back {
        d.begin_rollback(&error);
        let mut problems = Vec::new();
        if traffic_moved {
            let vars = d.vars(&version).set(Placeholder::Percent, "0");
            if let Err(e) = d
                .run_command(&canary.traffic, vars, "traffic", "0%".to_string())
                .await
            {
                problems.push(e);
            }
        }
        if let Err(e) = d.restore_instances(&touched, None).await {
            problems.push(e);
        }
        d.finish_rollback(match problems.is_empty() {
            true => Ok(()),
            false => Err(problems.join("; ")),
        });
    }
    Err(error)
}

/// Scrapes every metrics URL (one, or one per canary when the URL names `{instance}`) and
/// sums them into one snapshot.
async fn scrape(
    analysis: &Analysis,
    canaries: &[Instance],
    timeout: Duration,
) -> Result<Snapshot, String> {
    let per_instance = [
        Placeholder::Instance,
        Placeholder::InstanceHost,
        Placeholder::InstancePort,
    ]
    .iter()
    .any(|p| analysis.metrics.uses(*p));
    let sources: Vec<Option<&Instance>> = if per_instance {
        canaries.iter().map(Some).collect()
    } else {
        vec![None]
    };
    let mut total = Snapshot::default();
    for source in sources {
        let vars = source.map(vars_for).unwrap_or_default();
        let raw = analysis.metrics.render(&vars)?;
        let url = Url::parse(&raw)?;
        let response = tokio::time::timeout(timeout, http::get(&url, MAX_METRICS_BODY))
            .await
            .map_err(|_| format!("no answer from {url} within {}", format_duration(timeout)))?
            .map_err(|e| format!("cannot read metrics: {e}"))?;
        if !(200..300).contains(&response.status) {
            return Err(format!(
                "cannot read metrics: HTTP {} from {url}",
                response.status
            ));
        }
        let samples = metrics::parse(&response.body_text()).map_err(|e| format!("{url}: {e}"))?;
        let key = source.map(|i| i.raw.clone()).unwrap_or_default();
        total.merge(Snapshot::extract(&samples, &analysis.queries, &key));
    }
    Ok(total)
}

/// Watches one analysis window. `Ok` and `Err` both describe what was measured.
async fn analyze(
    analysis: &Analysis,
    canaries: &[Instance],
    timeout: Duration,
) -> Result<String, String> {
    let baseline = scrape(analysis, canaries, timeout).await?;
    let started = Instant::now();
    let deadline = started + analysis.window;
    loop {
        let now = Instant::now();
        tokio::time::sleep(
            analysis
                .interval
                .min(deadline.saturating_duration_since(now)),
        )
        .await;
        let current = scrape(analysis, canaries, timeout).await?;
        let w = metrics::window(&baseline, &current);
        let measured = describe(&w, started.elapsed());
        if let Some(exceeded) = judge(analysis, &w) {
            return Err(format!("{exceeded} ({measured})"));
        }
        if Instant::now() >= deadline {
            if (w.requests as u64) < analysis.min_requests {
                return Err(format!(
                    "only {} request(s) in the window, fewer than min_requests {} ({measured})",
                    w.requests as u64, analysis.min_requests
                ));
            }
            return Ok(measured);
        }
    }
}

/// The first limit the window exceeds, if any.
fn judge(analysis: &Analysis, w: &Window) -> Option<String> {
    if let (Some(max), Some(rate)) = (analysis.max_error_rate, w.error_rate())
        && rate > max
    {
        return Some(format!(
            "error rate {}% > max_error_rate {}%",
            format_percent(rate * 100.0),
            format_percent(max * 100.0)
        ));
    }
    if let (Some(max), Some(p99)) = (analysis.max_p99_ms, w.quantile(0.99))
        && p99 * 1000.0 > max
    {
        return Some(format!(
            "p99 latency {:.0}ms > max_p99_ms {max}",
            p99 * 1000.0
        ));
    }
    None
}

fn describe(w: &Window, elapsed: Duration) -> String {
    let rate = match w.error_rate() {
        Some(r) => format!("error rate {}%", format_percent(r * 100.0)),
        None => "no requests".to_string(),
    };
    let p99 = match w.quantile(0.99) {
        Some(s) => format!("p99 {:.0}ms", s * 1000.0),
        None => "no latency observations".to_string(),
    };
    format!(
        "{rate} ({} errors of {} requests), {p99}, over {}",
        w.errors as u64,
        w.requests as u64,
        format_duration(elapsed)
    )
}
