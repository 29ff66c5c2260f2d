//! Output for people and programs: the `status` and `list` views as text,
//! JSON and Graphviz DOT, and `list`'s timeline and critical chain. Pure
//! functions from views to strings.

use std::fmt::Write;

use crate::duration::{human_secs, stamp_secs};
use crate::protocol::{DepView, Status, UnitView};

mod chain;
mod timeline;

pub use chain::critical;
pub use timeline::timeline;

/// `status UNIT`: one unit, for people.
pub fn status(unit: &UnitView, now: f64) -> String {
    let mut out = String::new();
    let since = human_secs(now - unit.since);
    let _ = writeln!(out, "unit:       {}", unit.unit);
    let _ = match &unit.reason {
        Some(reason) => writeln!(out, "status:     {} ({since} ago): {reason}", unit.status),
        None => writeln!(out, "status:     {} ({since} ago)", unit.status),
    };
    if let Some(note) = &unit.note {
        let _ = writeln!(out, "note:       {note}");
    }
    let _ = writeln!(out, "startable:  {}", startability(unit, now));
    for (i, dep) in unit.dependencies.iter().enumerate() {
        let label = if i == 0 { "depends on:" } else { "" };
        let soft = if dep.soft { ", soft" } else { "" };
        let met = if dep.satisfied { "met" } else { "unmet" };
        let _ = writeln!(out, "{label:<11} {} ({}{soft}, {met})", dep.unit, dep.status);
    }
    let span = |t: Option<f64>| t.map_or("-".to_owned(), human_secs);
    let _ = writeln!(out, "started:    {}", stamp(unit.started_at));
    // Only a service becomes ready: other units go without the line.
    if unit.ready_at.is_some() {
        let _ = writeln!(out, "ready:      {}", stamp(unit.ready_at));
    }
    // Only a running unit has an owner, if it was started with one.
    if let Some(pid) = unit.owner {
        let _ = writeln!(out, "owner:      pid {pid}");
    }
    // Only a unit whose command was restarted (README.md, "Supervision").
    if unit.restarts > 0 {
        let last = unit.restarted_at.last().map(|&at| format!(", {} ago", human_secs(now - at)));
        let why = unit.last_failure.as_deref().unwrap_or("no reason given");
        let _ = writeln!(
            out,
            "restarts:   {} (last: {why}{})",
            unit.restarts,
            last.unwrap_or_default()
        );
    }
    let _ = writeln!(out, "finished:   {}", stamp(unit.finished_at));
    let _ = writeln!(out, "waited:     {}", span(unit.waited));
    let _ = writeln!(out, "ran:        {}", span(unit.ran));
    out
}

/// Whether a unit is startable and, if not, why, in one sentence: `no,
/// waiting for git-clone (started 3.20s ago) and gti-clone (never
/// registered)`.
fn startability(unit: &UnitView, now: f64) -> String {
    let unmet: Vec<&DepView> = unit.dependencies.iter().filter(|d| !d.satisfied).collect();
    if unit.status == Status::NotRegistered {
        return "yes (nobody declared it)".to_owned();
    }
    if unmet.is_empty() {
        return "yes".to_owned();
    }
    // An unsatisfied failed dependency is a hard one: no wait will help.
    if let Some(failed) = unmet.iter().find(|d| d.status == Status::Failed) {
        let ago = human_secs(now - failed.since);
        return format!(
            "no, dependency {} failed {ago} ago, so {} cannot start",
            failed.unit, unit.unit
        );
    }
    let names: Vec<String> = unmet.iter().map(|d| waited_for(d, now, None)).collect();
    format!("no, waiting for {}", and_list(&names))
}

/// `list`: a table sorted by unit, times relative to the server's start;
/// with a RESTARTS column when any unit was restarted.
pub fn table(units: &[UnitView]) -> String {
    let header = ["UNIT", "STATUS", "STARTABLE", "STARTED", "READY", "WAITED", "RAN", "DEPENDS ON"];
    let rows: Vec<[String; 8]> = units
        .iter()
        .map(|u| {
            let deps: Vec<String> = u
                .dependencies
                .iter()
                .map(|d| if d.soft { format!("{} (soft)", d.unit) } else { d.unit.clone() })
                .collect();
            [
                u.unit.clone(),
                status_note(u),
                match (u.status, u.startable) {
                    // Nobody declared it: nothing to say.
                    (Status::NotRegistered, _) => "-",
                    (_, true) => "yes",
                    (_, false) => "no",
                }
                .to_owned(),
                stamp(u.started_at),
                stamp(u.ready_at),
                u.waited.map_or("-".to_owned(), human_secs),
                u.ran.map_or("-".to_owned(), human_secs),
                if deps.is_empty() { "-".to_owned() } else { deps.join(", ") },
            ]
        })
        .collect();
    let mut all = vec![header.map(String::from)];
    all.extend(rows);
    if units.iter().all(|u| u.restarts == 0) {
        return columns(&all);
    }
    // Before DEPENDS ON, which stays last (it is not cut).
    let restarts =
        ["RESTARTS".to_owned()].into_iter().chain(units.iter().map(|u| u.restarts.to_string()));
    let all: Vec<Vec<String>> = all
        .into_iter()
        .map(Vec::from)
        .zip(restarts)
        .map(|(mut row, restarts)| {
            row.insert(7, restarts);
            row
        })
        .collect();
    layout(&all.iter().map(Vec::as_slice).collect::<Vec<_>>())
}

/// A time since the server's start, `+1.200s`, or `-` if there is none.
fn stamp(t: Option<f64>) -> String {
    t.map_or("-".to_owned(), |t| stamp_secs('+', t))
}

/// A unit's status with its note, if it has one: `completed (stopped)`,
/// or with its owner while it runs: `started (pid 42)`.
fn status_note(unit: &UnitView) -> String {
    match (&unit.note, unit.owner) {
        (Some(note), _) => format!("{} ({note})", unit.status),
        (None, Some(pid)) => format!("{} (pid {pid})", unit.status),
        (None, None) => unit.status.to_string(),
    }
}

/// Widest a cell of a table may be, but in the last column: a 255-byte
/// name or a long failure reason is cut with `…` rather than widen
/// every row.
const MAX_CELL: usize = 48;

/// Aligns rows of cells (the first row is the header) into columns two
/// spaces apart, without trailing blanks. Cells but the last are cut to
/// [`MAX_CELL`] columns.
pub fn columns<const N: usize>(rows: &[[String; N]]) -> String {
    layout(&rows.iter().map(|row| &row[..]).collect::<Vec<_>>())
}

/// [`columns`] for rows as slices, all as long: one copy of the layout
/// for every table width (BENCHMARKS.md, "Footprint").
fn layout(rows: &[&[String]]) -> String {
    let rows: Vec<Vec<String>> = rows
        .iter()
        .map(|row| {
            let last = row.len().saturating_sub(1);
            let fitted = |(at, cell): (usize, &String)| match at < last {
                true => fit(cell, MAX_CELL),
                false => cell.clone(),
            };
            row.iter().enumerate().map(fitted).collect()
        })
        .collect();
    let mut widths = vec![0; rows.first().map_or(0, Vec::len)];
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(text_width(cell));
        }
    }
    let mut out = String::new();
    for row in &rows {
        let mut text = String::new();
        for (cell, &width) in row.iter().zip(&widths) {
            text += &pad(cell, width);
            text += "  ";
        }
        out += text.trim_end();
        out.push('\n');
    }
    out
}

/// Seconds to whole milliseconds, the wire's precision: sorting and
/// comparing on it is immune to float noise such as `0.615 - 0.603`.
fn millis(secs: f64) -> i64 {
    (secs * 1000.0).round() as i64
}

/// `text` in at most `columns` columns, cut with an ellipsis.
fn fit(text: &str, columns: usize) -> String {
    if text_width(text) <= columns {
        return text.to_owned();
    }
    let mut cut = String::new();
    let mut used = 0;
    for c in text.chars() {
        used += char_width(c);
        if used + 1 > columns {
            break;
        }
        cut.push(c);
    }
    if columns > 0 {
        cut.push('…');
    }
    cut
}

/// `text` padded with spaces to `columns` columns.
fn pad(text: &str, columns: usize) -> String {
    format!("{text}{}", " ".repeat(columns.saturating_sub(text_width(text))))
}

/// How many terminal columns `text` takes.
fn text_width(text: &str) -> usize {
    text.chars().map(char_width).sum()
}

/// Two columns for an East Asian wide or fullwidth character (CJK, kana,
/// Hangul, fullwidth forms, most emoji), one for the rest. A small table
/// of the common ranges, not all of Unicode's East Asian Width data.
fn char_width(c: char) -> usize {
    const WIDE: [(u32, u32); 14] = [
        (0x1100, 0x115F),   // Hangul Jamo leading consonants
        (0x2E80, 0x303E),   // CJK radicals, Kangxi, CJK symbols and punctuation
        (0x3041, 0x33FF),   // kana, bopomofo, CJK compatibility
        (0x3400, 0x4DBF),   // CJK extension A
        (0x4E00, 0x9FFF),   // CJK unified ideographs
        (0xA000, 0xA4CF),   // Yi
        (0xAC00, 0xD7A3),   // Hangul syllables
        (0xF900, 0xFAFF),   // CJK compatibility ideographs
        (0xFE30, 0xFE4F),   // CJK compatibility forms
        (0xFF00, 0xFF60),   // fullwidth forms
        (0xFFE0, 0xFFE6),   // fullwidth signs
        (0x1F300, 0x1F64F), // pictographs, emoticons
        (0x1F900, 0x1F9FF), // supplemental pictographs
        (0x20000, 0x3FFFD), // CJK extensions B and later
    ];
    let c = u32::from(c);
    if WIDE.iter().any(|&(low, high)| (low..=high).contains(&c)) { 2 } else { 1 }
}

/// `git-clone (started 3.20s ago)`: a unit that someone waits for and how
/// far it has got, with an optional note (`never registered; did you mean
/// git-clone?`). The one wording of these facts: `status`, the critical
/// chain and the client's waiting lines all say them with it.
pub fn waited_for(dep: &DepView, now: f64, note: Option<&str>) -> String {
    let ago = || human_secs(now - dep.since);
    let state = match dep.status {
        Status::NotRegistered => "never registered".to_owned(),
        Status::Pending => "registered, not started".to_owned(),
        Status::Started => format!("started {} ago", ago()),
        Status::Ready => format!("ready {} ago", ago()),
        Status::Completed => format!("completed {} ago", ago()),
        Status::Failed => format!("failed {} ago", ago()),
    };
    match note {
        Some(note) => format!("{} ({state}; {note})", dep.unit),
        None => format!("{} ({state})", dep.unit),
    }
}

/// `a`, `a and b`, `a, b and c`.
fn and_list(items: &[String]) -> String {
    match items {
        [] => String::new(),
        [one] => one.clone(),
        [rest @ .., last] => format!("{} and {last}", rest.join(", ")),
    }
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
        let (fill, border) = match u.status {
            Status::Completed => ("palegreen", "solid"),
            Status::Ready => ("mediumseagreen", "solid"),
            Status::Failed => ("salmon", "solid"),
            Status::Started => ("lightskyblue", "solid"),
            Status::Pending => ("lightgrey", "solid"),
            Status::NotRegistered => ("white", "dashed"),
        };
        let name = dot_string(&u.unit);
        let label = dot_string(&format!("{}\n{}", u.unit, status_note(u)));
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
    use Status::*;

    pub(super) fn view(unit: &str, status: Status, deps: &[(&str, Status, bool)]) -> UnitView {
        UnitView {
            unit: unit.into(),
            status,
            startable: deps.iter().all(|d| d.1 == Completed),
            dependencies: deps
                .iter()
                .map(|&(u, s, soft)| DepView {
                    unit: u.into(),
                    status: s,
                    soft,
                    satisfied: s == Completed || (soft && s == Failed),
                    since: 0.0,
                })
                .collect(),
            reason: None,
            note: None,
            failed_by: None,
            since: 1.0,
            started_at: Some(1.5),
            ready_at: None,
            finished_at: None,
            waited: Some(0.25),
            ran: None,
            waiting_since: None,
            owner: None,
            restarts: 0,
            last_failure: None,
            restarted_at: Vec::new(),
        }
    }

    #[test]
    fn table_aligns_columns() {
        let units = [
            view("a", Completed, &[]),
            view("pip-install", Started, &[("a", Completed, false), ("c", Failed, true)]),
            view("z", NotRegistered, &[]),
        ];
        assert_eq!(
            table(&units),
            "\
UNIT         STATUS          STARTABLE  STARTED  READY  WAITED  RAN  DEPENDS ON
a            completed       yes        +1.500s  -      250ms   -    -
pip-install  started         no         +1.500s  -      250ms   -    a, c (soft)
z            not registered  -          +1.500s  -      250ms   -    -
"
        );
    }

    #[test]
    fn table_shows_when_a_service_was_ready_and_how_it_completed() {
        let mut units = services();
        let stopped = stop(named(&units, "db"), 2.5);
        units.push(UnitView { unit: "cache".into(), ..stopped });
        assert_eq!(
            table(&units),
            "\
UNIT   STATUS               STARTABLE  STARTED  READY    WAITED  RAN    DEPENDS ON
db     ready                yes        +0.000s  +1.200s  0ms     -      -
web    completed            yes        +1.250s  -        1.15s   750ms  db
cache  completed (stopped)  yes        +0.000s  +1.200s  0ms     2.50s  -
"
        );
    }

    #[test]
    fn tables_cut_long_cells_and_align_wide_characters() {
        let long = "x".repeat(255);
        let units = [view(&long, Pending, &[]), view("日本語", Pending, &[])];
        let cut = format!("{}…", "x".repeat(MAX_CELL - 1));
        assert_eq!(
            table(&units),
            format!(
                "\
{:<48}  STATUS   STARTABLE  STARTED  READY  WAITED  RAN  DEPENDS ON
{cut}  pending  yes        +1.500s  -      250ms   -    -
日本語{}  pending  yes        +1.500s  -      250ms   -    -
",
                "UNIT",
                " ".repeat(MAX_CELL - 6)
            )
        );
        assert_eq!(fit("日本語", 4), "日…");
        assert_eq!(fit("日本語", 5), "日本…");
        assert_eq!(text_width("a日😀"), 5);
    }

    #[test]
    fn dot_quotes_names_and_dashes_soft_edges() {
        let units = [view("coder_script.x[\"y\"]", Pending, &[("a", NotRegistered, true)])];
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
    fn dot_colours_a_ready_unit_and_labels_a_note() {
        let units = [named(&services(), "db"), stop(named(&services(), "db"), 2.5)];
        let dot = dot(&units);
        assert!(
            dot.contains(
                "  \"db\" [label=\"db\\nready\", fillcolor=mediumseagreen, style=\"rounded,filled,solid\"];\n"
            ),
            "{dot}"
        );
        assert!(
            dot.contains(
                "  \"db\" [label=\"db\\ncompleted (stopped)\", fillcolor=palegreen, style=\"rounded,filled,solid\"];\n"
            ),
            "{dot}"
        );
    }

    #[test]
    fn waited_for_words_each_status_once() {
        let at = |status| DepView {
            unit: "a".into(),
            status,
            soft: false,
            satisfied: false,
            since: 1.0,
        };
        let cases = [
            (NotRegistered, "a (never registered)"),
            (Pending, "a (registered, not started)"),
            (Started, "a (started 2.00s ago)"),
            (Ready, "a (ready 2.00s ago)"),
            (Completed, "a (completed 2.00s ago)"),
            (Failed, "a (failed 2.00s ago)"),
        ];
        for (status, text) in cases {
            assert_eq!(waited_for(&at(status), 3.0, None), text);
        }
        assert_eq!(
            waited_for(&at(NotRegistered), 3.0, Some("did you mean b?")),
            "a (never registered; did you mean b?)"
        );
    }

    #[test]
    fn status_says_why_it_is_not_ready() {
        let text = status(&view("b", Pending, &[("a", Started, false)]), 3.0);
        assert!(text.contains("startable:  no, waiting for a (started 3.00s ago)\n"), "{text}");
        assert!(text.contains("depends on: a (started, unmet)\n"), "{text}");
    }

    /// A unit with its timings: started at, waited, finished at.
    pub(super) fn timed(
        name: &str,
        status: Status,
        started_at: Option<f64>,
        waited: Option<f64>,
        finished_at: Option<f64>,
    ) -> UnitView {
        UnitView {
            unit: name.into(),
            status,
            startable: true,
            dependencies: Vec::new(),
            reason: None,
            note: None,
            failed_by: None,
            since: finished_at.or(started_at).unwrap_or(0.0),
            started_at,
            ready_at: None,
            finished_at,
            waited,
            ran: finished_at.zip(started_at).map(|(f, s)| f - s),
            waiting_since: None,
            owner: None,
            restarts: 0,
            last_failure: None,
            restarted_at: Vec::new(),
        }
    }

    /// `on` as a dependency object, its status and `since` taken from it.
    pub(super) fn dep(on: &UnitView, soft: bool) -> DepView {
        DepView {
            unit: on.unit.clone(),
            status: on.status,
            soft,
            satisfied: matches!(on.status, Completed | Ready) || (soft && on.status == Failed),
            since: on.since,
        }
    }

    /// The demo's graph, all done: git-clone and apt-install in parallel,
    /// agent after git-clone, pip-install after both. Sorted by name.
    pub(super) fn demo() -> Vec<UnitView> {
        let git = timed("git-clone", Completed, Some(0.007), Some(0.0), Some(0.614));
        let apt = timed("apt-install", Completed, Some(0.007), Some(0.0), Some(1.015));
        let mut agent = timed("agent", Completed, Some(0.616), Some(0.603), Some(0.919));
        agent.dependencies = vec![dep(&git, false)];
        let mut pip = timed("pip-install", Completed, Some(1.017), Some(1.009), Some(1.42));
        pip.dependencies = vec![dep(&apt, false), dep(&git, false)];
        vec![agent, apt, git, pip]
    }

    /// At +5s: fetch completed; build waited for it, then failed; test
    /// failed because build did; a server with a long name still runs;
    /// report waits for it and for a placeholder; idle never started.
    pub(super) fn trouble() -> Vec<UnitView> {
        let fetch = timed("fetch", Completed, Some(0.0), Some(0.0), Some(1.0));
        let mut build = timed("build", Failed, Some(1.0), Some(1.0), Some(2.5));
        build.reason = Some("exit status 2".into());
        build.dependencies = vec![dep(&fetch, false)];
        let mut test = timed("test", Failed, None, None, Some(2.6));
        test.reason = Some("dependency build failed: exit status 2".into());
        test.failed_by = Some("build".into());
        test.dependencies = vec![dep(&build, false)];
        let serve =
            timed("coder_script.frontend[\"dev-server\"]", Started, Some(3.0), Some(0.0), None);
        let mut typo = timed("gti-clone", NotRegistered, None, None, None);
        typo.since = 4.0;
        let mut report = timed("report", Pending, None, None, None);
        report.waiting_since = Some(4.0);
        report.startable = false;
        report.dependencies = vec![dep(&build, true), dep(&serve, false), dep(&typo, false)];
        let idle = timed("idle", Pending, None, None, None);
        let mut all = vec![fetch, build, test, serve, typo, report, idle];
        all.sort_unstable_by(|a, b| a.unit.cmp(&b.unit));
        all
    }

    /// At +3s: db, a service, started at once and was ready at +1.2s; it
    /// still runs. web asked to start at +0.1s, waited for db, started
    /// at +1.25s and completed at +2s.
    pub(super) fn services() -> Vec<UnitView> {
        let mut db = timed("db", Ready, Some(0.0), Some(0.0), None);
        db.ready_at = Some(1.2);
        db.since = 1.2;
        let mut web = timed("web", Completed, Some(1.25), Some(1.15), Some(2.0));
        web.dependencies = vec![dep(&db, false)];
        vec![db, web]
    }

    /// A ready service ended at `at` by a stop signal that `run` forwarded.
    pub(super) fn stop(service: UnitView, at: f64) -> UnitView {
        let ran = service.started_at.map(|s| at - s);
        UnitView {
            status: Completed,
            note: Some("stopped".into()),
            since: at,
            finished_at: Some(at),
            ran,
            ..service
        }
    }

    /// Finds a fixture unit by name.
    pub(super) fn named(units: &[UnitView], name: &str) -> UnitView {
        units.iter().find(|u| u.unit == name).expect("the fixture has it").clone()
    }

    #[test]
    fn status_shows_when_a_service_was_ready_and_its_note() {
        let db = named(&services(), "db");
        assert_eq!(
            status(&db, 3.0),
            "\
unit:       db
status:     ready (1.80s ago)
startable:  yes
started:    +0.000s
ready:      +1.200s
finished:   -
waited:     0ms
ran:        -
"
        );
        assert_eq!(
            status(&stop(db, 2.5), 3.0),
            "\
unit:       db
status:     completed (500ms ago)
note:       stopped
startable:  yes
started:    +0.000s
ready:      +1.200s
finished:   +2.500s
waited:     0ms
ran:        2.50s
"
        );
    }

    #[test]
    fn status_says_why_in_one_sentence() {
        let text = status(&named(&trouble(), "report"), 5.0);
        assert!(
            text.contains(
                "startable:  no, waiting for coder_script.frontend[\"dev-server\"] (started 2.00s ago) and gti-clone (never registered)\n"
            ),
            "{text}"
        );
        let text = status(&named(&trouble(), "test"), 5.0);
        assert!(
            text.contains(
                "startable:  no, dependency build failed 2.50s ago, so test cannot start\n"
            ),
            "{text}"
        );
        let mut c = timed("c", Pending, None, None, None);
        c.dependencies = vec![
            dep(&timed("a", Pending, None, None, None), false),
            dep(&timed("b", Pending, None, None, None), true),
            dep(&named(&demo(), "git-clone"), false),
        ];
        let text = status(&c, 5.0);
        assert!(
            text.contains("startable:  no, waiting for a (registered, not started) and b (registered, not started)\n"),
            "{text}"
        );
        let text = status(&timed("x", NotRegistered, None, None, None), 5.0);
        assert!(text.contains("startable:  yes (nobody declared it)\n"), "{text}");
    }
}
