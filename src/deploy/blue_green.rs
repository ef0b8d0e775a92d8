//! Blue-green: the idle colour gets the new version and passes its gate; `switch` points
//! traffic at it; it is watched for `blue_green.watch`; on failure `switch` points traffic
//! back. The colour that was live keeps its version, so switching back is instant. Until the
//! switch nothing serves from the idle colour, so a failure before it needs no rollback.

use crate::deploy::command::Placeholder;
use crate::deploy::deployment::{Color, Deployment};

/// `live` is the colour serving now; `skip_update` when the idle colour is known to run the
/// version already (a rollback to the version it was left on).
pub async fn deploy(
    d: &mut Deployment<'_>,
    live: Color,
    skip_update: bool,
) -> Result<String, String> {
    let plan = d.plan;
    let Some(bg) = plan.blue_green.as_ref() else {
        return Err("deploy.blue_green is missing".to_string());
    };
    let instances_of = |c: Color| match c {
        Color::Blue => &bg.blue,
        Color::Green => &bg.green,
    };
    let idle = live.other();
    let version = d.version.clone();
    d.color = Some(live);

    if skip_update {
        for instance in instances_of(idle) {
            let gate = plan.gate.wait_healthy(instance).await;
            let ok = gate.is_ok();
            let detail = match &gate {
                Ok(s) | Err(s) => s.clone(),
            };
            d.record("gate", Some(instance.raw.clone()), ok, detail, None);
            if let Err(e) = gate {
                return Err(format!(
                    "{} colour instance {instance}: {e}; traffic stayed on {}",
                    idle.as_str(),
                    live.as_str()
                ));
            }
        }
    } else {
        for r in d
            .update_and_gate(instances_of(idle), &version, Some(idle))
            .await
        {
            if let Err(e) = r.result {
                return Err(format!(
                    "{} colour {e}; traffic stayed on {}",
                    idle.as_str(),
                    live.as_str()
                ));
            }
        }
    }

    let switch_vars = |c: Color| d.vars(&version).set(Placeholder::Color, c.as_str());
    let to_idle = switch_vars(idle);
    let back = switch_vars(live);
    let failure = match d
        .run_command(&bg.switch, to_idle, "switch", idle.as_str().to_string())
        .await
    {
        Err(e) => Some(e),
        Ok(()) => {
            d.color = Some(idle);
            let watched = plan.gate.watch(instances_of(idle), bg.watch).await;
            let ok = watched.is_ok();
            let detail = match &watched {
                Ok(s) | Err(s) => s.clone(),
            };
            d.record("watch", Some(idle.as_str().to_string()), ok, detail, None);
            watched.err()
        }
    };
    let Some(error) = failure else {
        return Ok(format!(
            "{} ({} instance(s)) serves {version}; {} kept on the previous version",
            idle.as_str(),
            instances_of(idle).len(),
            live.as_str()
        ));
    };
    if d.may_roll_back {
        d.begin_rollback(&error);
        // Switching back even when the switch itself failed: it may have half-applied.
        let result = d
            .run_command(&bg.switch, back, "switch", live.as_str().to_string())
            .await;
        if result.is_ok() {
            d.color = Some(live);
        }
        d.finish_rollback(result);
    }
    Err(error)
}
