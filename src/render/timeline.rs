//! `list --timeline`: a text Gantt chart of when each unit waited, ran,
//! was ready, failed or still goes on. Pure: views in, text out.

use std::fmt::Write;

use super::{fit, millis, pad, text_width};
use crate::duration::human_secs;
use crate::protocol::{Status, UnitView};

/// Timeline cells. ASCII, so the chart survives any terminal and any log.
const WAITING: char = '.';
const RUNNING: char = '#';
/// A service from when it became ready: still running, serving its
/// dependents.
const READY: char = '=';
const FAILED: char = '!';
const ONGOING: char = '>';
/// When its command was restarted (README.md, "Supervision").
const RESTARTED: char = '^';
/// The bar keeps at least this many columns (or half the width, if more);
/// the unit-name column is truncated to leave it that room.
const MIN_BAR: usize = 10;

/// `list --timeline`: a text Gantt chart, `width` columns at most. One row
/// per unit, in the order they started or began waiting (then by name);
/// units that never did either come last, placeholders after the rest. Time
/// runs from the server's start to the latest event, or to `now` while a
/// unit still runs or waits.
pub fn timeline(units: &[UnitView], now: f64, width: usize) -> String {
    if units.is_empty() {
        return "no units\n".to_owned();
    }
    let mut lanes: Vec<Lane> = units.iter().map(|u| Lane::new(u, now)).collect();
    lanes.sort_by_key(Lane::order_key);
    let total = lanes.iter().flat_map(|l| &l.spans).map(|s| s.1).fold(0.0, f64::max);
    let longest = lanes.iter().map(|l| text_width(&l.unit.unit)).max().unwrap_or(0);
    let name_width = longest.max(4).min(width.saturating_sub(3 + MIN_BAR.max(width / 2)).max(1));
    // `NAME |BAR|`: the bar gets what the names leave.
    let bar = width.saturating_sub(name_width + 3).max(1);
    let scale = if total > 0.0 { bar as f64 / total } else { 0.0 };

    let mut out = String::new();
    let header = format!("{}  {}", pad("UNIT", name_width), axis(total, bar));
    out += header.trim_end();
    out.push('\n');
    let (mut ready, mut failed, mut ongoing, mut restarted) = (false, false, false, false);
    for lane in &lanes {
        let mut cells = vec![' '; bar];
        if lane.spans.is_empty() {
            // Nothing to draw: say why, inside the bar.
            for (cell, c) in cells.iter_mut().zip(fit(lane.unit.status.as_str(), bar).chars()) {
                *cell = c;
            }
        }
        let mut last = 0;
        for &(from, to, c) in &lane.spans {
            let (first, end) = span_cells(from, to, scale, bar);
            cells[first..end].fill(c);
            last = last.max(end - 1);
        }
        if let Some(mark) = lane.end_mark {
            cells[last] = mark;
            failed |= mark == FAILED;
            ongoing |= mark == ONGOING;
        }
        for &at in &lane.unit.restarted_at {
            let (cell, _) = span_cells(at, at, scale, bar);
            cells[cell.min(bar - 1)] = RESTARTED;
            restarted = true;
        }
        // The end mark may hide a ready phase one cell long.
        ready |= cells.contains(&READY);
        let bar: String = cells.into_iter().collect();
        let _ = writeln!(out, "{} |{bar}|", pad(&fit(&lane.unit.unit, name_width), name_width));
    }
    let mut legend = vec![". waiting", "# running"];
    if ready {
        legend.push("= ready");
    }
    if failed {
        legend.push("! failed");
    }
    if ongoing {
        legend.push("> still going");
    }
    if restarted {
        legend.push("^ restarted");
    }
    out + &wrap(&legend, width)
}

/// One timeline row: the spans to draw and how the row sorts.
struct Lane<'a> {
    unit: &'a UnitView,
    /// `(from, to, cell)`, drawn in this order, later over earlier.
    spans: Vec<(f64, f64, char)>,
    /// Replaces the last drawn cell: failed, or still running or waiting.
    end_mark: Option<char>,
}

impl<'a> Lane<'a> {
    fn new(unit: &'a UnitView, now: f64) -> Lane<'a> {
        let mut spans = Vec::new();
        // A wait ends in its start, or, for a unit that never started from
        // it (a dependency failed, its client gave up), when it finished.
        if let (Some(end), Some(waited)) = (unit.started_at.or(unit.finished_at), unit.waited)
            && waited > 0.0
        {
            spans.push(((end - waited).max(0.0), end, WAITING));
        }
        match (unit.started_at, unit.finished_at) {
            (Some(start), end) => {
                let end = if still_running(unit) { now } else { end.unwrap_or(start) };
                match unit.ready_at {
                    // A service: running until it was ready, ready since,
                    // up to its end (a stopped service too) or now.
                    Some(ready) => {
                        let ready = ready.max(start);
                        spans.push((start, ready, RUNNING));
                        spans.push((ready, end.max(ready), READY));
                    }
                    None => spans.push((start, end.max(start), RUNNING)),
                }
            }
            // Finished without a start of its own (`complete` of a unit
            // nobody started, a dependency failed): an instant.
            (None, Some(end)) => spans.push((end, end, RUNNING)),
            (None, None) => {}
        }
        // A refused `start` waiting now (after an earlier run, perhaps).
        if let Some(since) = unit.waiting_since {
            spans.push((since, now.max(since), WAITING));
        }
        let end_mark = if spans.is_empty() {
            None
        } else if unit.status == Status::Failed {
            Some(FAILED)
        } else if still_running(unit) || unit.waiting_since.is_some() {
            Some(ONGOING)
        } else {
            None
        };
        Lane { unit, spans, end_mark }
    }

    /// When it first waited or started, to the millisecond.
    fn first(&self) -> Option<i64> {
        self.spans.iter().map(|s| millis(s.0)).min()
    }

    /// Orders lanes by group, then first time (none first), then name.
    fn order_key(&self) -> (u8, Option<i64>, &'a str) {
        (self.group(), self.first(), &self.unit.unit)
    }

    /// Units with something to draw, then the other registered ones, then
    /// placeholders.
    fn group(&self) -> u8 {
        match (self.spans.is_empty(), self.unit.status) {
            (false, _) => 0,
            (true, Status::NotRegistered) => 2,
            (true, _) => 1,
        }
    }
}

/// Whether a unit's process still runs: started, or ready (a service).
fn still_running(unit: &UnitView) -> bool {
    matches!(unit.status, Status::Started | Status::Ready)
}

/// The cells `[first, end)` that a span covers; at least one, so an
/// instant stays visible.
fn span_cells(from: f64, to: f64, scale: f64, bar: usize) -> (usize, usize) {
    // A hair of slack so float noise never moves an edge by a whole cell.
    let first = ((from * scale + 1e-9).floor() as usize).min(bar - 1);
    let end = ((to * scale - 1e-9).ceil() as usize).clamp(first + 1, bar);
    (first, end)
}

/// The time axis over the bar: 0 at the left, `total` at the right.
fn axis(total: f64, bar: usize) -> String {
    let (left, right) = (human_secs(0.0), human_secs(total));
    if left.len() + 1 + right.len() <= bar {
        format!("{left}{right:>0$}", bar - left.len())
    } else if right.len() <= bar {
        format!("{right:>bar$}")
    } else {
        String::new()
    }
}

/// Items two spaces apart, wrapped at `width` columns.
fn wrap(items: &[&str], width: usize) -> String {
    let mut out = String::new();
    let mut line = String::new();
    for item in items {
        if !line.is_empty() && line.chars().count() + 2 + item.chars().count() > width {
            out += &line;
            out.push('\n');
            line.clear();
        }
        if !line.is_empty() {
            line += "  ";
        }
        line += item;
    }
    out + &line + "\n"
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::render::tests::*;
    use Status::*;

    #[test]
    fn the_timeline_aligns_wide_names() {
        let units = [
            timed("日本", Completed, Some(0.0), None, Some(1.0)),
            timed("ab", Completed, Some(0.0), None, Some(1.0)),
        ];
        let chart = timeline(&units, 1.0, 30);
        let bars: Vec<usize> = chart
            .lines()
            .skip(1)
            .take(2)
            .map(|l| text_width(l.split('|').next().unwrap()))
            .collect();
        assert_eq!(bars, [5, 5], "{chart}");
    }

    #[test]
    fn timeline_of_the_demo() {
        assert_eq!(
            timeline(&demo(), 1.5, 72),
            "\
UNIT         0ms                                                  1.42s
apt-install |##########################################                |
git-clone   |##########################                                |
pip-install |.........................................#################|
agent       |.........................#############                    |
. waiting  # running
"
        );
        assert_eq!(
            timeline(&demo(), 1.5, 40),
            "\
UNIT         0ms                  1.42s
apt-install |###################       |
git-clone   |############              |
pip-install |..................########|
agent       |...........######         |
. waiting  # running
"
        );
        // Narrow: names are cut, the bar keeps its minimum.
        assert_eq!(
            timeline(&demo(), 1.5, 20),
            "\
UNIT     0ms  1.42s
apt-in… |########  |
git-cl… |#####     |
pip-in… |.......###|
agent   |....###   |
. waiting  # running
"
        );
    }

    #[test]
    fn timeline_marks_failed_running_waiting_and_placeholders() {
        // build's `!` ends its run; test failed without running (its
        // dependency did); the server still runs and report still waits, up
        // to now; idle and the placeholder come last, said in words.
        assert_eq!(
            timeline(&trouble(), 5.0, 72),
            "\
UNIT                               0ms                            5.00s
build                             |.......##########!                  |
fetch                             |########                            |
test                              |                  !                 |
coder_script.frontend[\"dev-serve… |                     ##############>|
report                            |                            .......>|
idle                              |pending                             |
gti-clone                         |not registered                      |
. waiting  # running  ! failed  > still going
"
        );
        assert_eq!(
            timeline(&trouble(), 5.0, 40),
            "\
UNIT               0ms            5.00s
build             |....#####!          |
fetch             |####                |
test              |          !         |
coder_script.fro… |            #######>|
report            |                ...>|
idle              |pending             |
gti-clone         |not registered      |
. waiting  # running  ! failed
> still going
"
        );
        assert_eq!(
            timeline(&trouble(), 5.0, 20),
            "\
UNIT     0ms  5.00s
build   |..##!     |
fetch   |##        |
test    |     !    |
coder_… |      ###>|
report  |        .>|
idle    |pending   |
gti-cl… |not regis…|
. waiting  # running
! failed
> still going
"
        );
    }

    #[test]
    fn timeline_draws_a_service_ready_phase() {
        // db ran until it was ready, and is still ready now: `=` up to `>`.
        assert_eq!(
            timeline(&services(), 3.0, 40),
            "\
UNIT  0ms                         3.00s
db   |#############===================>|
web  | ............#########           |
. waiting  # running  = ready
> still going
"
        );
        // Stopped at +2.5s, it keeps its ready phase up to its end.
        let units = [stop(named(&services(), "db"), 2.5), named(&services(), "web")];
        assert_eq!(
            timeline(&units, 3.0, 40),
            "\
UNIT  0ms                         2.50s
db   |###############==================|
web  | ...............###########      |
. waiting  # running  = ready
"
        );
    }

    #[test]
    fn timeline_fits_any_width() {
        for units in [demo(), trouble(), services()] {
            for width in 20..=200 {
                let text = timeline(&units, 5.0, width);
                for line in text.lines() {
                    let columns = line.chars().count();
                    assert!(columns <= width, "{columns} > {width}:\n{text}");
                    // Every row is the full width: name, bar, borders.
                    if line.ends_with('|') {
                        assert_eq!(columns, width, "{text}");
                    }
                }
                assert_eq!(text.lines().filter(|l| l.ends_with('|')).count(), units.len());
            }
        }
    }

    #[test]
    fn timeline_edge_cases() {
        assert_eq!(timeline(&[], 1.0, 40), "no units\n");
        // Nothing happened yet: no division by a zero total.
        let idle = [timed("a", Pending, None, None, None)];
        assert_eq!(
            timeline(&idle, 0.0, 24),
            "UNIT  0ms           0ms\na    |pending          |\n. waiting  # running\n"
        );
        // Everything at the same instant still draws one cell.
        let instant = [timed("a", Completed, Some(0.0), Some(0.0), Some(0.0))];
        assert_eq!(
            timeline(&instant, 0.0, 24),
            "UNIT  0ms           0ms\na    |#                |\n. waiting  # running\n"
        );
    }
}
