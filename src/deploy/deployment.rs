//! What every strategy does with its instances: update them (the `update` template), gate
//! them on health, run the `traffic` and `switch` commands, and record each as a history
//! step. A strategy writes to the deployment's steps until it starts a rollback, then to the
//! rollback's.

use std::time::Duration;

use crate::deploy::command::{self, CommandTemplate, Placeholder, Vars};
use crate::deploy::gate::Instance;
use crate::deploy::history::{Step, now};
use crate::deploy::plan::{Plan, vars_for};
use crate::units::format_duration;

/// The blue-green colours.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Color {
    Blue,
    Green,
}

impl Color {
    pub fn as_str(self) -> &'static str {
        match self {
            Color::Blue => "blue",
            Color::Green => "green",
        }
    }

    pub fn other(self) -> Color {
        match self {
            Color::Blue => Color::Green,
            Color::Green => Color::Blue,
        }
    }

    pub fn parse(s: &str) -> Option<Color> {
        match s {
            "blue" => Some(Color::Blue),
            "green" => Some(Color::Green),
            _ => None,
        }
    }
}

/// A rollback a strategy ran after a failure.
#[derive(Debug, Default)]
pub struct RollbackRun {
    pub steps: Vec<Step>,
    /// `None` while running; then whether it brought the service back.
    pub result: Option<Result<(), String>>,
}

/// One deployment in progress.
pub struct Deployment<'a> {
    pub plan: &'a Plan,
    pub version: String,
    /// The version running before, when known (history or `--from`).
    pub previous: Option<String>,
    pub steps: Vec<Step>,
    pub rollback: Option<RollbackRun>,
    /// Blue-green: the colour serving traffic at the end.
    pub color: Option<Color>,
    /// Whether a failure may be rolled back (`auto_rollback`, and never for a rollback).
    pub may_roll_back: bool,
}

/// How one instance fared in an update + gate.
pub struct InstanceResult {
    pub instance: Instance,
    pub result: Result<(), String>,
}

impl<'a> Deployment<'a> {
    pub fn new(plan: &'a Plan, version: String, previous: Option<String>) -> Deployment<'a> {
        Deployment {
            plan,
            version,
            previous,
            steps: Vec::new(),
            rollback: None,
            color: None,
            may_roll_back: plan.auto_rollback,
        }
    }

    /// Records a step in the deployment, or in the rollback once one started.
    pub fn record(
        &mut self,
        action: &str,
        target: Option<String>,
        ok: bool,
        detail: String,
        output: Option<String>,
    ) {
        let step = Step {
            at: now(),
            action: action.to_string(),
            target,
            ok,
            detail,
            output: output.filter(|o| !o.is_empty()),
        };
        match &mut self.rollback {
            Some(r) => r.steps.push(step),
            None => self.steps.push(step),
        }
    }

    /// The values every template of this run has.
    pub fn vars(&self, version: &str) -> Vars {
        let mut vars = Vars::new().set(Placeholder::Version, version);
        if let Some(previous) = &self.previous {
            vars = vars.set(Placeholder::PreviousVersion, previous.clone());
        }
        vars
    }

    /// Runs a traffic or switch command; records it; `Err` says what failed.
    pub async fn run_command(
        &mut self,
        template: &CommandTemplate,
        vars: Vars,
        action: &str,
        target: String,
    ) -> Result<(), String> {
        let label = format!("{action} {target}");
        let argv = match template.render(&vars) {
            Ok(argv) => argv,
            Err(e) => {
                self.record(action, Some(target), false, e.clone(), None);
                return Err(e);
            }
        };
        let outcome = command::run(&argv, self.plan.command_timeout, &label).await;
        let detail = format!(
            "{} in {}",
            outcome.status,
            format_duration(round(outcome.duration))
        );
        self.record(
            action,
            Some(target.clone()),
            outcome.success,
            detail,
            Some(outcome.output),
        );
        if outcome.success {
            Ok(())
        } else {
            Err(format!("{} ({}) {}", template.key, target, outcome.status))
        }
    }

    /// Updates `instances` to `version` and gates each on health, all at once. Records an
    /// `update` and a `gate` step per instance.
    pub async fn update_and_gate(
        &mut self,
        instances: &[Instance],
        version: &str,
        color: Option<Color>,
    ) -> Vec<InstanceResult> {
        let plan = self.plan;
        let base = self.vars(version);
        let jobs = instances.iter().map(|instance| {
            let mut vars = base.clone().merge(vars_for(instance));
            if let Some(c) = color {
                vars = vars.set(Placeholder::Color, c.as_str());
            }
            async move {
                let mut steps = Vec::new();
                let label = format!("update {instance}");
                let result = match plan.update.render(&vars) {
                    Err(e) => {
                        steps.push(("update", false, e.clone(), None));
                        Err(e)
                    }
                    Ok(argv) => {
                        let outcome = command::run(&argv, plan.command_timeout, &label).await;
                        let detail = format!(
                            "{} to {version} in {}",
                            outcome.status,
                            format_duration(round(outcome.duration))
                        );
                        steps.push(("update", outcome.success, detail, Some(outcome.output)));
                        if outcome.success {
                            let gate = plan.gate.wait_healthy(instance).await;
                            match &gate {
                                Ok(d) => steps.push(("gate", true, d.clone(), None)),
                                Err(e) => steps.push(("gate", false, e.clone(), None)),
                            }
                            gate.map(|_| ())
                                .map_err(|e| format!("instance {instance}: {e}"))
                        } else {
                            Err(format!(
                                "instance {instance}: update to {version} failed: {}",
                                outcome.status
                            ))
                        }
                    }
                };
                (instance.clone(), steps, result)
            }
        });
        let results = futures_util::future::join_all(jobs).await;
        let mut out = Vec::with_capacity(results.len());
        for (instance, steps, result) in results {
            for (action, ok, detail, output) in steps {
                self.record(action, Some(instance.raw.clone()), ok, detail, output);
            }
            out.push(InstanceResult { instance, result });
        }
        out
    }

    /// Starts the rollback phase: later steps go to the rollback record.
    pub fn begin_rollback(&mut self, why: &str) {
        tracing::warn!("rolling back: {why}");
        self.rollback = Some(RollbackRun::default());
    }

    pub fn finish_rollback(&mut self, result: Result<(), String>) {
        match &result {
            Ok(()) => tracing::info!("rollback done"),
            Err(e) => tracing::error!("rollback failed: {e}"),
        }
        if let Some(r) = &mut self.rollback {
            r.result = Some(result);
        }
    }

    /// Returns `instances` to the previous version, in batches of the rolling `batch_size`
    /// (all at once without a `rolling:` section: speed matters more than caution when the
    /// target is a known-good version).
    pub async fn restore_instances(
        &mut self,
        instances: &[Instance],
        color: Option<Color>,
    ) -> Result<(), String> {
        let Some(previous) = self.previous.clone() else {
            let e = format!(
                "no previous version is known (no succeeded deployment in history, no --from): {} instance(s) still run {}",
                instances.len(),
                self.version
            );
            self.record("rollback", None, false, e.clone(), None);
            return Err(e);
        };
        let batch = if self.plan.rolling_configured {
            self.plan.rolling.batch_size.max(1)
        } else {
            instances.len().max(1)
        };
        let mut failures = Vec::new();
        for chunk in instances.chunks(batch) {
            for r in self.update_and_gate(chunk, &previous, color).await {
                if let Err(e) = r.result {
                    failures.push(e);
                }
            }
        }
        match failures.first() {
            None => Ok(()),
            Some(first) => Err(format!(
                "{} of {} instance(s) did not come back on {previous}: {first}",
                failures.len(),
                instances.len()
            )),
        }
    }
}

/// Milliseconds are noise in a step's duration.
fn round(d: Duration) -> Duration {
    Duration::from_millis(d.as_millis() as u64 / 10 * 10)
}
