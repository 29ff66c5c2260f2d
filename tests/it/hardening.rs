//! Defects a new user found, each pinned end to end: the real binary, a
//! real server, a real socket.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::util::*;

#[test]
fn a_failure_is_never_lost_to_its_reason() {
    let sb = Sandbox::new();
    let _server = sb.serve(&[]);
    sb.run(&["want", "api", "db"]).ok();
    sb.run(&["start", "db"]).ok();
    // What `--reason "$(cat err.log)"` passes: lines, tabs, escapes, and
    // far more than 1,024 bytes (more even than a request line holds).
    let log = "error: connection refused\n\tat db.connect()\r\n\n\u{1b}[31mgave up\u{1b}[0m\n";
    sb.run(&["fail", "db", "--reason", log]).ok();
    let kept = "error: connection refused / at db.connect() / [31mgave up [0m";
    sb.run(&["status", "db", "--json"]).ok().stdout_has(&format!("\"reason\": \"{kept}\""));
    sb.run(&["start", "api"]).code(5).stderr_has(&format!("dependency db failed: {kept}"));
    let huge = "x".repeat(100 * 1024);
    sb.run(&["fail", "db", "--reason", &huge]).ok();
    let json = sb.run(&["status", "db", "--json"]);
    json.ok().stdout_has(&format!("\"reason\": \"{}...\"", "x".repeat(1021)));
}

#[test]
fn a_server_that_cannot_start_leaves_neither_a_server_nor_a_socket() {
    let sb = Sandbox::new();
    let pidfile = sb.path("missing/dir/pid");
    let pidfile = pidfile.to_string_lossy();
    // Detached: the child found it could not write the pidfile, said so to
    // its parent, and went away with its socket.
    let out = sb.run(&["serve", "--detach", "--pidfile", &pidfile]);
    out.code(1).stderr_has(&format!("unitsync: cannot write pidfile {pidfile}: "));
    assert!(!sb.socket().exists(), "a failed serve --detach left its socket{out}");
    sb.run(&["ping"]).code(3).stderr_has("no such socket");
    // In the foreground too.
    let out = sb.run(&["serve", "--pidfile", &pidfile]);
    out.code(1).stderr_has("cannot write pidfile");
    assert!(!sb.socket().exists(), "a failed serve left its socket{out}");
    // Nor for a log file, a state file or a group it cannot use.
    let missing = sb.path("missing/dir/file");
    let missing = missing.to_string_lossy();
    for (flag, value, error) in [
        ("--log", &*missing, "cannot open log file"),
        ("--state", &*missing, "state file"),
        ("--group", "no-such-group-here", "--group: "),
    ] {
        let out = sb.run(&["serve", "--detach", flag, value]);
        out.code(1).stderr_has(error);
        assert!(!sb.socket().exists(), "a failed serve --detach {flag} left its socket{out}");
    }
    // The next try is not told that a server is already running.
    let out = sb.run(&["serve", "--detach"]);
    out.ok();
    let detached = Detached(out.stdout.trim().to_owned());
    sb.run(&["ping"]).ok();
    drop(detached);
    eventually("the detached server removes its socket", || !sb.socket().exists());
}

/// A server started with `serve --detach`, stopped when dropped.
struct Detached(String);

impl Drop for Detached {
    fn drop(&mut self) {
        let _ = std::process::Command::new("kill").args(["-TERM", &self.0]).status();
    }
}

#[test]
fn quiet_silences_progress_never_errors() {
    let sb = Sandbox::new();
    let _server = sb.serve(&[]);
    let out = sb.run(&["-q", "run", "x", "--", "/nonexistent"]);
    out.code(127).stderr_is(
        "unitsync: x: cannot run /nonexistent: No such file or directory (os error 2)\n",
    );
    sb.run(&["status", "x", "--json"]).ok().stdout_has("\"status\": \"failed\"");
    // Progress stays silent.
    sb.run(&["-q", "run", "y", "--", "true"]).ok().stderr_is("");
}

#[test]
fn unitsync_optional_takes_the_usual_words_and_refuses_others() {
    let sb = Sandbox::new();
    let optional = |value: &str| {
        let mut cmd = sb.cmd(&["complete", "x"]);
        cmd.env("UNITSYNC_OPTIONAL", value);
        output(format!("UNITSYNC_OPTIONAL={value} unitsync complete x"), cmd)
    };
    for yes in ["1", "true", "yes", "on", "TRUE", "Yes"] {
        optional(yes).ok().stderr_has("continuing without coordination");
    }
    for no in ["0", "false", "no", "off", "Off"] {
        optional(no).code(3).stderr_has("cannot reach the server");
    }
    optional("maybe")
        .code(2)
        .stderr_has("unitsync: $UNITSYNC_OPTIONAL: \"maybe\" is not yes or no");
}

#[test]
fn run_without_a_unit_before_the_double_dash_is_a_usage_error() {
    let sb = Sandbox::new();
    let _server = sb.serve(&[]);
    let out = sb.run(&["run", "--", "echo", "hi"]);
    out.code(2).stderr_is("unitsync: missing UNIT before --; see 'unitsync run --help'\n");
    out.stdout_is("");
    sb.run(&["list", "--json"]).ok().stdout_is("[]\n");
}

#[test]
fn list_formats_exclude_each_other() {
    let sb = Sandbox::new();
    for (a, b) in [("--json", "--dot"), ("--critical", "--timeline"), ("--timeline", "--json")] {
        sb.run(&["list", a, b]).code(2).stderr_is(&format!(
            "unitsync: {a} and {b} cannot be used together; see 'unitsync list --help'\n"
        ));
    }
}

#[test]
fn serve_creates_the_socket_directory_but_never_its_parents() {
    let sb = Sandbox::new();
    let deep = sb.path("missing/dir/u.sock");
    let out = sb.run(&["serve", "--socket", &deep.to_string_lossy()]);
    out.code(1).stderr_has(&format!(
        "cannot create socket directory {}: {} does not exist",
        sb.path("missing/dir").display(),
        sb.path("missing").display()
    ));
    assert!(!sb.path("missing").exists(), "serve created the socket's parents{out}");
    // The socket's own directory is created, as the default one is.
    let shallow = sb.path("own/u.sock");
    let mut cmd = sb.cmd(&["serve"]);
    cmd.env("UNITSYNC_SOCKET", &shallow).stderr(std::process::Stdio::null());
    let mut server = Server { child: cmd.spawn().unwrap(), log: sb.path("none"), socket: shallow };
    server.wait_ready();
    assert!(server.stop_with("TERM").success());
}

#[test]
fn a_change_the_state_file_cannot_hold_is_refused_and_nothing_changes() {
    let sb = Sandbox::new();
    let disk = sb.path("disk");
    let mount = Tmpfs::mount(&disk, "12k");
    let state = disk.join("state");
    let state = state.to_string_lossy();
    let server = sb.serve(&["--state", &state]);
    fill(&disk.join("filler"));
    // The journal's last page still has room: declare units until it has
    // none, each acknowledged one recorded.
    let mut acknowledged = Vec::new();
    let refused = loop {
        assert!(acknowledged.len() < 500, "the state file never filled up");
        let unit = format!("u{:03}", acknowledged.len());
        let out = sb.run(&["want", &unit, "dep"]);
        match out.code {
            Some(0) => acknowledged.push(unit),
            _ => {
                out.code(1).stderr_has(&format!("unitsync: state file {state}: "));
                out.stderr_has("No space left on device");
                out.stderr_has("; the change was refused and nothing changed\n");
                break unit;
            }
        }
    };
    // Nothing changed, and the server keeps serving, refusing changes
    // while the disk is full and answering everything else.
    sb.run(&["status", &refused, "--json"]).ok().stdout_has("\"status\": \"not registered\"");
    // A change whose line is longer than the refused one cannot fit either
    // (a shorter one might: the last page's room depends on the times
    // recorded in earlier lines).
    let longer = "a-dependency-whose-name-is-longer-than-dep";
    sb.run(&["want", "u000", longer])
        .code(1)
        .stderr_has("the change was refused and nothing changed");
    let u000 = sb.run(&["status", "u000", "--json"]);
    u000.ok().stdout_has("\"status\": \"pending\"");
    assert!(!u000.stdout.contains(longer), "the refused edge was kept{u000}");
    let log = server.log();
    assert!(log.contains("the change was refused and nothing changed\n"), "{log}");
    // Once there is room, the same request succeeds, and a restarted server
    // recovers exactly what was acknowledged: no torn or extra line.
    fs::remove_file(disk.join("filler")).unwrap();
    sb.run(&["want", &refused, "dep"]).ok();
    drop(server);
    let server = sb.serve(&["--state", &state]);
    let recovered = format!("recovered {} changes from {state}", acknowledged.len() + 1);
    assert!(server.log().contains(&recovered), "{}", server.log());
    let list = sb.run(&["list"]);
    for unit in acknowledged.iter().chain([&refused]) {
        list.ok().stdout_has(&format!("\n{unit} "));
    }
    sb.run(&["status", "u000", "--json"]).ok().stdout_has("\"status\": \"pending\"");
    drop(server);
    drop(mount);
}

/// A tmpfs of `size` mounted on a directory, unmounted when dropped (even
/// when the test fails).
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(dir: &Path, size: &str) -> Tmpfs {
        fs::create_dir_all(dir).unwrap();
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .status()
            .unwrap();
        assert!(
            status.success(),
            "this test needs root to mount a tmpfs: run it as root (CI does)"
        );
        Tmpfs(dir.to_owned())
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        // Lazily: a server still holding a file there must not keep it.
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// Writes `path` until its filesystem is full.
fn fill(path: &Path) {
    let mut file = fs::File::create(path).unwrap();
    let block = [b'x'; 512];
    while file.write(&block).is_ok_and(|n| n > 0) {}
}

#[test]
fn ping_names_the_server_process() {
    let sb = Sandbox::new();
    let server = sb.serve(&[]);
    let version = env!("CARGO_PKG_VERSION");
    sb.run(&["ping"]).ok().stdout_is(&format!(
        "unitsync {version} (protocol 2) at {}, server pid {}\n",
        sb.socket().display(),
        server.pid()
    ));
    let pong = raw_exchange(&sb.socket(), &[br#"{"op":"ping"}"#]);
    assert!(pong[0].ends_with(&format!(",\"pid\":{}}}\n", server.pid())), "{pong:?}");
}

#[test]
fn help_as_a_command_is_the_help() {
    let sb = Sandbox::new();
    let general = sb.run(&["--help"]);
    sb.run(&["help"]).ok().stdout_is(&general.stdout);
    let run = sb.run(&["run", "--help"]);
    sb.run(&["help", "run"]).ok().stdout_is(&run.stdout);
    sb.run(&["help", "frob"]).code(2).stderr_has("unknown command \"frob\"");
}

#[test]
fn a_unit_named_with_a_leading_dash_goes_after_the_double_dash() {
    let sb = Sandbox::new();
    let _server = sb.serve(&[]);
    sb.run(&["want", "-dash"])
        .code(2)
        .stderr_has("unknown option -d (a unit name that starts with '-' goes after '--')");
    sb.run(&["want", "--", "-dash", "-x"]).ok();
    sb.run(&["status", "--", "-dash"]).ok().stdout_has("status:     pending");
}

#[test]
fn an_empty_socket_path_is_a_usage_error() {
    let sb = Sandbox::new();
    for args in [&["--socket", "", "ping"][..], &["serve", "--socket", ""]] {
        sb.run(args).code(2).stderr_has("unitsync: --socket needs a path, not an empty string");
    }
}

#[test]
fn a_script_whose_interpreter_is_missing_says_so() {
    let sb = Sandbox::new();
    let _server = sb.serve(&[]);
    let script = sb.path("job.sh");
    fs::write(&script, "#!/nonexistent/bash\necho hi\n").unwrap();
    let mut perms = fs::metadata(&script).unwrap().permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o755);
    fs::set_permissions(&script, perms).unwrap();
    sb.run(&["run", "job", "--", &script.to_string_lossy()]).code(127).stderr_has(
        "its interpreter /nonexistent/bash (its #! line) was not found; install it or change that line",
    );
}

#[test]
fn a_socket_path_that_cannot_hold_a_socket_says_what_to_do() {
    let sb = Sandbox::new();
    sb.run(&["serve", "--socket", "/proc/unitsync-test.sock"]).code(1).stderr_has(
        "cannot listen on /proc/unitsync-test.sock: No such file or directory (os error 2); \
         choose a directory this user may write to with --socket or $UNITSYNC_SOCKET",
    );
}
