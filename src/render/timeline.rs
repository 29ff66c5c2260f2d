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
    let (mut ready, mut failed, mut ongoing) = (false, false, false);
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
