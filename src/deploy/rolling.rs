//! Rolling: instances in batches of `batch_size`; each instance of a batch is updated and
//! gated; after each batch the share of failed instances (over all instances) is compared
//! with `max_failure`. Past it, the deployment stops there and every instance it touched goes
//! back to the previous version. Under it, the deployment goes on and the failures are
//! recorded.

use crate::deploy::deployment::Deployment;
use crate::deploy::gate::Instance;
use crate::units::format_percent;

/// Options that differ between a deployment and a manual rollback.
pub struct RollingRun<'a> {
    pub instances: &'a [Instance],
    pub batch_size: usize,
    pub max_failure: f64,
    pub pause: std::time::Duration,
}

pub async fn deploy(d: &mut Deployment<'_>, run: RollingRun<'_>) -> Result<String, String> {
    let total = run.instances.len();
    let batches: Vec<&[Instance]> = run.instances.chunks(run.batch_size.max(1)).collect();
    let version = d.version.clone();
    let mut touched: Vec<Instance> = Vec::new();
    let mut failed: Vec<String> = Vec::new();
    for (n, batch) in batches.iter().enumerate() {
        let label = format!("batch {} of {}", n + 1, batches.len());
        if n > 0 && !run.pause.is_zero() {
            tracing::info!("pausing {:?} before {label}", run.pause);
            tokio::time::sleep(run.pause).await;
        }
        let names: Vec<&str> = batch.iter().map(|i| i.raw.as_str()).collect();
        tracing::info!(batch = n + 1, "updating {} to {version}", names.join(", "));
        let results = d.update_and_gate(batch, &version, None).await;
        touched.extend(batch.iter().cloned());
        let batch_failures: Vec<String> =
            results.into_iter().filter_map(|r| r.result.err()).collect();
        failed.extend(batch_failures.iter().cloned());
        let ratio = failed.len() as f64 / total.max(1) as f64;
        if ratio > run.max_failure {
            let error = format!(
                "{label}: {} of {total} instance(s) failed ({}% > max_failure {}%): {}",
                failed.len(),
                format_percent(ratio * 100.0),
                format_percent(run.max_failure * 100.0),
                batch_failures
                    .first()
                    .or(failed.first())
                    .map(String::as_str)
                    .unwrap_or("")
            );
            d.record("batch", Some(label), false, error.clone(), None);
            if d.may_roll_back {
                d.begin_rollback(&error);
                let result = d.restore_instances(&touched, None).await;
                d.finish_rollback(result);
            }
            return Err(error);
        }
        let detail = if batch_failures.is_empty() {
            format!("{} instance(s) healthy on {version}", batch.len())
        } else {
            format!(
                "{} of {} instance(s) failed, {}% of all within max_failure {}%: {}",
                batch_failures.len(),
                batch.len(),
                format_percent(ratio * 100.0),
                format_percent(run.max_failure * 100.0),
                batch_failures.join("; ")
            )
        };
        d.record("batch", Some(label), true, detail, None);
    }
    Ok(if failed.is_empty() {
        format!(
            "{total} instance(s) on {version} in {} batch(es)",
            batches.len()
        )
    } else {
        format!(
            "{} of {total} instance(s) on {version}; {} failed within max_failure: {}",
            total - failed.len(),
            failed.len(),
            failed.join("; ")
        )
    })
}
