//! Output for people and programs: the `status` and `list` views as text,
//! JSON and Graphviz DOT. Pure functions from views to strings.

use std::fmt::Write;

use crate::duration::human_secs;
use crate::protocol::{DepView, UnitView};

/// `status UNIT`: one unit, for people.
pub fn status(unit: &UnitView, now: f64) -> String {
    let mut out = String::new();
    let since = human_secs(now - unit.since);
    let _ = writeln!(out, "unit:       {}", unit.unit);
    let _ = match &unit.reason {
        Some(reason) => writeln!(out, "status:     {} ({since} ago): {reason}", unit.status),
        None => writeln!(out, "status:     {} ({since} ago)", unit.status),
    };
    let _ = writeln!(out, "ready:      {}", readiness(unit));
    for (i, dep) in unit.dependencies.iter().enumerate() {
        let label = if i == 0 { "depends on:" } else { "" };
        let soft = if dep.soft { ", soft" } else { "" };
        let met = if dep.satisfied { "met" } else { "unmet" };
        let _ = writeln!(out, "{label:<11} {} ({}{soft}, {met})", dep.unit, dep.status);
    }
    let time = |t: Option<f64>| t.map_or("-".to_owned(), |t| format!("+{t:.3}s"));
    let span = |t: Option<f64>| t.map_or("-".to_owned(), human_secs);
    let _ = writeln!(out, "started:    {}", time(unit.started_at));
    let _ = writeln!(out, "finished:   {}", time(unit.finished_at));
    let _ = writeln!(out, "waited:     {}", span(unit.waited));
    let _ = writeln!(out, "ran:        {}", span(unit.ran));
    out
}

/// Why a unit is or is not ready, in one phrase.
fn readiness(unit: &UnitView) -> String {
    let unmet: Vec<&DepView> = unit.dependencies.iter().filter(|d| !d.satisfied).collect();
    if unmet.is_empty() {
        return "yes".to_owned();
    }
    let names: Vec<String> = unmet.iter().map(|d| format!("{} ({})", d.unit, d.status)).collect();
    format!("no, waiting for {}", names.join(", "))
}

/// `list`: a table sorted by unit, times relative to the server's start.
pub fn table(units: &[UnitView]) -> String {
    let header = ["UNIT", "STATUS", "READY", "STARTED", "WAITED", "RAN", "DEPENDS ON"];
    let rows: Vec<[String; 7]> = units
        .iter()
        .map(|u| {
            let deps: Vec<String> = u
                .dependencies
                .iter()
                .map(|d| if d.soft { format!("{} (soft)", d.unit) } else { d.unit.clone() })
                .collect();
            [
                u.unit.clone(),
                u.status.clone(),
                if u.ready { "yes" } else { "no" }.to_owned(),
                u.started_at.map_or("-".to_owned(), |t| format!("+{t:.3}s")),
                u.waited.map_or("-".to_owned(), human_secs),
                u.ran.map_or("-".to_owned(), human_secs),
                if deps.is_empty() { "-".to_owned() } else { deps.join(", ") },
            ]
        })
        .collect();
    let mut widths = header.map(str::len);
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let mut line = |cells: &[&str]| {
        let mut text = String::new();
        for (i, cell) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                text += cell;
            } else {
                let _ = write!(text, "{cell:<width$}  ", width = widths[i]);
            }
        }
        out += text.trim_end();
        out.push('\n');
    };
    line(&header);
    for row in &rows {
        line(&row.each_ref().map(String::as_str));
    }
    out
}

/// `status --json` and `list --json`: pretty JSON and a newline.
pub fn json(value: &impl serde::Serialize) -> String {
    // Views are plain data with string keys: serializing cannot fail.
    serde_json::to_string_pretty(value).expect("views serialize") + "\n"
}

/// `list --dot`: the graph, statuses as colours, soft edges dashed.
pub fn dot(units: &[UnitView]) -> String {
    let mut out = String::from(
        "digraph unitsync {\n  rankdir=LR;\n  node [shape=box, style=\"rounded,filled\", fontname=\"sans-serif\"];\n",
    );
    for u in units {
        let (fill, border) = match u.status.as_str() {
            "completed" => ("palegreen", "solid"),
            "failed" => ("salmon", "solid"),
            "started" => ("lightskyblue", "solid"),
            "pending" => ("lightgrey", "solid"),
            _ => ("white", "dashed"),
        };
        let name = dot_string(&u.unit);
        let label = dot_string(&format!("{}\n{}", u.unit, u.status));
        let _ = writeln!(
            out,
            "  {name} [label={label}, fillcolor={fill}, style=\"rounded,filled,{border}\"];"
        );
    }
    // Edges point from a dependency to its dependent: the order things run.
    for u in units {
        for d in &u.dependencies {
            let style = if d.soft { " [style=dashed]" } else { "" };
            let _ = writeln!(out, "  {} -> {}{style};", dot_string(&d.unit), dot_string(&u.unit));
        }
    }
    out.push_str("}\n");
    out
}

/// A DOT double-quoted string: names may hold quotes and backslashes.
fn dot_string(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(unit: &str, status: &str, deps: &[(&str, &str, bool)]) -> UnitView {
        UnitView {
            unit: unit.into(),
            status: status.into(),
            ready: deps.iter().all(|d| d.1 == "completed"),
            dependencies: deps
                .iter()
                .map(|&(u, s, soft)| DepView {
                    unit: u.into(),
                    status: s.into(),
                    soft,
                    satisfied: s == "completed" || (soft && s == "failed"),
                    since: 0.0,
                })
                .collect(),
            reason: None,
            since: 1.0,
            started_at: Some(1.5),
            finished_at: None,
            waited: Some(0.25),
            ran: None,
            waiting_since: None,
        }
    }

    #[test]
    fn table_aligns_columns() {
        let units = [
            view("a", "completed", &[]),
            view("pip-install", "started", &[("a", "completed", false), ("c", "failed", true)]),
        ];
        assert_eq!(
            table(&units),
            "\
UNIT         STATUS     READY  STARTED  WAITED  RAN  DEPENDS ON
a            completed  yes    +1.500s  250ms   -    -
pip-install  started    no     +1.500s  250ms   -    a, c (soft)
"
        );
    }

    #[test]
    fn dot_quotes_names_and_dashes_soft_edges() {
        let units = [view("coder_script.x[\"y\"]", "pending", &[("a", "not registered", true)])];
        assert_eq!(
            dot(&units),
            "digraph unitsync {
  rankdir=LR;
  node [shape=box, style=\"rounded,filled\", fontname=\"sans-serif\"];
  \"coder_script.x[\\\"y\\\"]\" [label=\"coder_script.x[\\\"y\\\"]\\npending\", fillcolor=lightgrey, style=\"rounded,filled,solid\"];
  \"a\" -> \"coder_script.x[\\\"y\\\"]\" [style=dashed];
}
"
        );
    }

    #[test]
    fn status_says_why_it_is_not_ready() {
        let text = status(&view("b", "pending", &[("a", "started", false)]), 3.0);
        assert!(text.contains("ready:      no, waiting for a (started)\n"), "{text}");
        assert!(text.contains("depends on: a (started, unmet)\n"), "{text}");
    }
}
