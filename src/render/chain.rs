//! `list --critical`: the chain of units that decided when the last one
//! finished, as `systemd-analyze critical-chain` shows it. Pure: views in,
//! text out.

use std::fmt::Write;

use super::{and_list, millis, pad, text_width, waited_for};
use crate::duration::{human_secs, stamp_secs};
use crate::protocol::{DepView, Status, UnitView};

/// `list --critical`: like `systemd-analyze critical-chain`, the chain of
/// units that decided when the last one finished. The unit that ended last
/// (one still running or waiting ends now; a service ends when it became
/// ready) blames its wait on the dependency that released it last before
/// it started (completed, or became ready), that one on its own, and so on
/// back to a unit that did not wait. Printed root first.
pub fn critical(units: &[UnitView], now: f64) -> String {
    if units.is_empty() {
        return "no units\n".to_owned();
    }
    let by_name = ByName::new(units);
    // Ties go to a waiting unit, then to a dependent of the other (each is
    // downstream of what it waits for: a unit that ran within the
    // millisecond its service became ready).
    let depends = |a: &UnitView, b: &UnitView| a.dependencies.iter().any(|d| d.unit == b.unit);
    let last = units.iter().filter_map(|u| Some((u, ended(u, now)?))).max_by(|(a, ta), (b, tb)| {
        millis(*ta)
            .cmp(&millis(*tb))
            .then(a.waiting_since.is_some().cmp(&b.waiting_since.is_some()))
            .then(depends(a, b).cmp(&depends(b, a)))
            .then(b.unit.cmp(&a.unit))
    });
    let Some((last, end)) = last else {
        return "no unit has started yet\n".to_owned();
    };
    let mut links: Vec<(&str, String)> = Vec::new();
    let mut seen = vec![false; units.len()];
    let mut next = Some(last.unit.as_str());
    // The server refuses cycles, but a bad view must not loop: every name
    // is visited once, so the walk is bounded by the number of units.
    while let Some(name) = next.take() {
        match by_name.find(name) {
            Some((i, _)) if std::mem::replace(&mut seen[i], true) => break,
            Some((_, unit)) => {
                let (text, blamed) = link(unit, &by_name, now);
                links.push((name, text));
                next = blamed;
            }
            None => links.push((name, "(unknown)".to_owned())),
        }
    }
    let name_width = links.iter().map(|(name, _)| text_width(name)).max().unwrap_or(0);
    let mut out = String::from("critical chain (@ when a unit started, + how long it ran):\n");
    for (name, text) in links.iter().rev() {
        let _ = writeln!(out, "{}  {text}", pad(name, name_width));
    }
    let total = human_secs(end);
    let _ = match last.status {
        Status::Started => writeln!(out, "total: {total} so far; {} is still running", last.unit),
        _ if last.waiting_since.is_some() => {
            writeln!(out, "total: {total} so far; {} is still waiting", last.unit)
        }
        _ if last.ready_at.is_some() => {
            writeln!(out, "total: {total} from the server's start until {} became ready", last.unit)
        }
        status => {
            writeln!(out, "total: {total} from the server's start until {} {status}", last.unit)
        }
    };
    out
}

/// When a unit ended, for the chain: now if it still runs or waits; when
/// it became ready if it is a service (it released its dependents then,
/// whatever it did since); else when it finished.
fn ended(unit: &UnitView, now: f64) -> Option<f64> {
    if unit.status == Status::Started || unit.waiting_since.is_some() {
        return Some(now);
    }
    unit.ready_at.or(unit.finished_at)
}

/// Units found by name: sorted once, then searched. (A `HashMap` would
/// bring one more copy of the hash table's code into the binary.)
struct ByName<'a>(Vec<&'a UnitView>);

impl<'a> ByName<'a> {
    fn new(units: &'a [UnitView]) -> ByName<'a> {
        let mut sorted: Vec<&UnitView> = units.iter().collect();
        sorted.sort_by_key(|u| &u.unit);
        ByName(sorted)
    }

    /// The unit named `name`, with a number of its own below `units.len()`.
    fn find(&self, name: &str) -> Option<(usize, &'a UnitView)> {
        let i = self.0.binary_search_by(|u| u.unit.as_str().cmp(name)).ok()?;
        Some((i, self.0[i]))
    }
}

/// When a dependency let its dependents go: when it became ready, if it
/// did since its last start, else when it entered its status if that
/// satisfies the edge (completed, or failed for a soft one).
fn released(dep: &DepView, by_name: &ByName) -> Option<f64> {
    let ready_at = by_name.find(&dep.unit).and_then(|(_, u)| u.ready_at);
    ready_at.or(dep.satisfied.then_some(dep.since))
}

/// One line of the critical chain, and the dependency to blame next.
fn link<'a>(unit: &'a UnitView, by_name: &ByName, now: f64) -> (String, Option<&'a str>) {
    if let Some(since) = unit.waiting_since {
        let unmet: Vec<&DepView> = unit.dependencies.iter().filter(|d| !d.satisfied).collect();
        // Follow the one furthest from done: it decides when the wait ends.
        let blamed = unmet.iter().min_by_key(|d| (progress(d.status), &d.unit));
        let names: Vec<String> = unmet.iter().map(|d| waited_for(d, now, None)).collect();
        let text = format!("waiting {} for {}", human_secs(now - since), and_list(&names));
        return (text, blamed.map(|d| d.unit.as_str()));
    }
    let reason = unit.reason.as_deref();
    if unit.status == Status::Failed
        && let Some(dep) = &unit.failed_by
    {
        let at = unit.finished_at.map_or("-".to_owned(), |t| stamp_secs('@', t));
        return (format!("failed {at}: {}", reason.unwrap_or_default()), Some(dep));
    }
    let Some(start) = unit.started_at else {
        let text = match (unit.status, unit.finished_at) {
            (status @ (Status::Completed | Status::Failed), Some(t)) => {
                format!("{status} {} without starting", stamp_secs('@', t))
            }
            (Status::NotRegistered, _) => "(never registered)".to_owned(),
            (status, _) => format!("({status}, never started)"),
        };
        return (text, None);
    };
    let running = unit.status == Status::Started;
    let end = match unit.ready_at {
        Some(ready) => ready,
        None if running => now,
        None => unit.finished_at.unwrap_or(start),
    };
    let mut notes = Vec::new();
    let mut blamed = None;
    if let Some(waited) = unit.waited.filter(|&w| w > 0.0) {
        // Its wait ended when the last of its dependencies released it.
        blamed = unit
            .dependencies
            .iter()
            .filter_map(|d| Some((d, millis(released(d, by_name)?))))
            .filter(|&(_, at)| at <= millis(start))
            .max_by(|(a, at), (b, bt)| at.cmp(bt).then(b.unit.cmp(&a.unit)))
            .map(|(d, _)| d.unit.as_str());
        notes.push(match blamed {
            Some(dep) => format!("waited {} for {dep}", human_secs(waited)),
            None => format!("waited {}", human_secs(waited)),
        });
    }
    if running {
        notes.push("still running".to_owned());
    }
    if unit.status == Status::Failed {
        // A service that failed after it was ready failed later than the
        // time shown.
        let then = if unit.ready_at.is_some() { "then " } else { "" };
        notes.push(reason.map_or(format!("{then}failed"), |r| format!("{then}failed: {r}")));
    }
    let mut text = format!("{} +{}", stamp_secs('@', start), human_secs(end - start));
    if unit.ready_at.is_some() {
        text += " to ready";
    }
    if !notes.is_empty() {
        let _ = write!(text, " ({})", notes.join("; "));
    }
    (text, blamed)
}

/// How far a dependency is from done, least first.
fn progress(status: Status) -> u8 {
    match status {
        Status::NotRegistered => 0,
        Status::Pending => 1,
        Status::Started => 2,
        Status::Ready | Status::Completed | Status::Failed => 3,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::render::tests::*;
    use Status::*;

    #[test]
    fn critical_chain_of_the_demo() {
        assert_eq!(
            critical(&demo(), 1.5),
            "\
critical chain (@ when a unit started, + how long it ran):
apt-install  @0.007s +1.01s
pip-install  @1.017s +403ms (waited 1.01s for apt-install)
total: 1.42s from the server's start until pip-install completed
"
        );
    }

    #[test]
    fn critical_chain_follows_the_dependency_that_completed_last() {
        // a(0.3s) and c(0.1s) in parallel, b after both: b waited for a.
        let a = timed("a", Completed, Some(0.0), Some(0.0), Some(0.3));
        let c = timed("c", Completed, Some(0.0), Some(0.0), Some(0.1));
        let mut b = timed("b", Completed, Some(0.302), Some(0.3), Some(0.4));
        b.dependencies = vec![dep(&a, false), dep(&c, false)];
        // d after b: three links.
        let mut d = timed("d", Completed, Some(0.401), Some(0.2), Some(0.5));
        d.dependencies = vec![dep(&b, false)];
        assert_eq!(
            critical(&[a, b, c, d], 0.6),
            "\
critical chain (@ when a unit started, + how long it ran):
a  @0.000s +300ms
b  @0.302s +98ms (waited 300ms for a)
d  @0.401s +99ms (waited 200ms for b)
total: 500ms from the server's start until d completed
"
        );
    }

    #[test]
    fn critical_chain_of_a_unit_still_running_or_waiting() {
        let mut units = demo();
        let pip = units.iter_mut().find(|u| u.unit == "pip-install").unwrap();
        pip.status = Started;
        pip.finished_at = None;
        assert_eq!(
            critical(&units, 1.5),
            "\
critical chain (@ when a unit started, + how long it ran):
apt-install  @0.007s +1.01s
pip-install  @1.017s +483ms (waited 1.01s for apt-install; still running)
total: 1.50s so far; pip-install is still running
"
        );
        // report waits for a running server and for a placeholder; the
        // chain follows the placeholder, which is furthest from done.
        assert_eq!(
            critical(&trouble(), 5.0),
            "\
critical chain (@ when a unit started, + how long it ran):
gti-clone  (never registered)
report     waiting 1.00s for coder_script.frontend[\"dev-server\"] (started 2.00s ago) and gti-clone (never registered)
total: 5.00s so far; report is still waiting
"
        );
    }

    #[test]
    fn critical_chain_blames_the_moment_a_service_was_ready() {
        // web waited for db until db was ready, not until it ended: the
        // same chain while db runs, once it was stopped after web
        // completed, and once it failed.
        let chain = "\
critical chain (@ when a unit started, + how long it ran):
db   @0.000s +1.20s to ready
web  @1.250s +750ms (waited 1.15s for db)
total: 2.00s from the server's start until web completed
";
        assert_eq!(critical(&services(), 3.0), chain);
        // web's view of db as it is now: it entered its status after web
        // started.
        let with = |db: UnitView| {
            let mut web = named(&services(), "web");
            web.dependencies = vec![dep(&db, false)];
            [db, web]
        };
        assert_eq!(critical(&with(stop(named(&services(), "db"), 2.5)), 3.0), chain);
        let mut db = named(&services(), "db");
        (db.status, db.since, db.finished_at) = (Failed, 2.5, Some(2.5));
        db.reason = Some("exit status 1".into());
        assert_eq!(
            critical(&with(db), 3.0),
            chain.replace("+1.20s to ready\n", "+1.20s to ready (then failed: exit status 1)\n")
        );
        // web ran within the millisecond db became ready: it is still
        // the end of the chain.
        let mut instant = named(&services(), "web");
        (instant.started_at, instant.finished_at, instant.ran) = (Some(1.2), Some(1.2), Some(0.0));
        instant.waited = Some(1.1);
        assert_eq!(
            critical(&[named(&services(), "db"), instant], 3.0),
            "\
critical chain (@ when a unit started, + how long it ran):
db   @0.000s +1.20s to ready
web  @1.200s +0ms (waited 1.10s for db)
total: 1.20s from the server's start until web completed
"
        );
        // A service still running counts as done when it became ready.
        let mut late = named(&services(), "web");
        (late.status, late.finished_at, late.ran) = (Completed, Some(1.0), None);
        (late.started_at, late.waited, late.dependencies) = (Some(0.5), Some(0.0), Vec::new());
        assert_eq!(
            critical(&[named(&services(), "db"), late], 3.0),
            "\
critical chain (@ when a unit started, + how long it ran):
db  @0.000s +1.20s to ready
total: 1.20s from the server's start until db became ready
"
        );
    }

    #[test]
    fn critical_chain_through_failures() {
        // test failed because build did, which had waited for fetch.
        let units: Vec<UnitView> =
            ["build", "fetch", "test"].iter().map(|n| named(&trouble(), n)).collect();
        assert_eq!(
            critical(&units, 5.0),
            "\
critical chain (@ when a unit started, + how long it ran):
fetch  @0.000s +1.00s
build  @1.000s +1.50s (waited 1.00s for fetch; failed: exit status 2)
test   failed @2.600s: dependency build failed: exit status 2
total: 2.60s from the server's start until test failed
"
        );
        // A soft dependency that failed still ended the wait.
        let mut lint = timed("lint", Failed, Some(0.0), Some(0.0), Some(0.5));
        lint.reason = None;
        let mut report = timed("report", Completed, Some(0.501), Some(0.5), Some(0.7));
        report.dependencies = vec![dep(&lint, true)];
        assert_eq!(
            critical(&[lint, report], 1.0),
            "\
critical chain (@ when a unit started, + how long it ran):
lint    @0.000s +500ms (failed)
report  @0.501s +199ms (waited 500ms for lint)
total: 700ms from the server's start until report completed
"
        );
    }

    #[test]
    fn critical_chain_edge_cases() {
        assert_eq!(critical(&[], 1.0), "no units\n");
        let idle = [named(&trouble(), "gti-clone"), named(&trouble(), "idle")];
        assert_eq!(critical(&idle, 5.0), "no unit has started yet\n");
        // A cycle cannot come from the server; if a view had one, the walk
        // still ends, each unit once.
        let mut a = timed("a", Completed, Some(1.0), Some(0.5), Some(2.0));
        let mut b = timed("b", Completed, Some(1.0), Some(0.5), Some(1.5));
        a.dependencies = vec![DepView { since: 0.0, ..dep(&b, false) }];
        b.dependencies = vec![DepView { since: 0.0, ..dep(&a, false) }];
        assert_eq!(
            critical(&[a, b], 3.0),
            "\
critical chain (@ when a unit started, + how long it ran):
b  @1.000s +500ms (waited 500ms for a)
a  @1.000s +1.00s (waited 500ms for b)
total: 2.00s from the server's start until a completed
"
        );
        // A wait no completed dependency explains (it re-ran since): the
        // chain stops there.
        let mut c = timed("c", Completed, Some(1.0), Some(0.5), Some(2.0));
        c.dependencies = vec![dep(&timed("a", Started, Some(1.5), Some(0.0), None), false)];
        assert_eq!(
            critical(&[c], 3.0),
            "\
critical chain (@ when a unit started, + how long it ran):
c  @1.000s +1.00s (waited 500ms)
total: 2.00s from the server's start until c completed
"
        );
    }
}
