//! Container conventions (README.md, "Stop scripts", "Default directory and
//! env files", examples/devcontainer): the real `up`, real shells.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::util::*;

/// The shells the scripts are run with, as a `#!` line's interpreter.
const SHELLS: [(&str, &str); 2] = [("busybox", "sh"), ("dash", "")];

/// `#!PATH ARG` for a shell of [`SHELLS`].
fn shebang((program, arg): (&str, &str)) -> String {
    require(program);
    let path = std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
        .map(|dir| dir.join(program))
        .find(|p| p.is_file())
        .expect("required above");
    format!("#!{} {arg}", path.display()).trim_end().to_owned()
}

fn script(dir: &Path, name: &str, shebang: &str, body: &str) {
    let path = dir.join(name);
    fs::write(&path, format!("{shebang}\n{body}\n")).unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
}

fn dir(sb: &Sandbox, name: &str) -> PathBuf {
    let dir = sb.path(name);
    fs::create_dir_all(&dir).unwrap();
    dir
}

/// A database stand-in: ready once its pidfile is there, and on its stop
/// signal it writes `db got TERM` to `log` before it exits.
fn db(dir: &Path, sh: &str, log: &Path) {
    let pid = dir.join("db.pid");
    script(
        dir,
        "db.sh",
        sh,
        &format!(
            "# unitsync: ready=file:{pid}\n\
             trap 'echo \"db got TERM\" >>{log}; exit 0' TERM\n\
             echo $$ >{pid}.new && mv {pid}.new {pid}\n\
             while :; do sleep 0.05; done",
            pid = pid.display(),
            log = log.display()
        ),
    );
}

#[test]
fn a_stop_script_runs_while_the_unit_it_names_still_runs() {
    for shell in SHELLS {
        let sh = shebang(shell);
        let sb = Sandbox::new();
        let dir = dir(&sb, "startup");
        let log = sb.path("order.log");
        db(&dir, &sh, &log);
        // It queries the database (alive, by its pid) and takes a while:
        // the database must outlive it all the same.
        script(
            &dir,
            "backup.sh",
            &sh,
            &format!(
                "# unitsync: on=stop after=db\n\
                 kill -0 \"$(cat {pid})\" && echo \"backup saw db running\" >>{log}\n\
                 echo backing up\n\
                 sleep 0.5\n\
                 echo \"backup done\" >>{log}",
                pid = dir.join("db.pid").display(),
                log = log.display()
            ),
        );
        script(
            &dir,
            "web.sh",
            &sh,
            "# unitsync: after=db ready=exec:true\nwhile :; do sleep 0.05; done",
        );
        let dir_arg = dir.to_string_lossy();
        // busybox: the main command ends; dash: SIGTERM to `up` while the
        // main command runs.
        let out = match shell.0 {
            "busybox" => sb.run(&["up", "--dir", &dir_arg, "--", "true"]),
            _ => sb.run(&[
                "up",
                "--dir",
                &dir_arg,
                "--",
                "sh",
                "-c",
                "kill -TERM $PPID; exec sleep 30",
            ]),
        };
        match shell.0 {
            "busybox" => out.code(0),
            _ => out.code(143),
        };
        out.stdout_has("backup.sh | backing up\n");
        out.stdout_has("backup.sh  backup  ran at stop");
        out.stderr_has("up: running stop script backup.sh");
        let order = fs::read_to_string(&log).unwrap();
        assert_eq!(order, "backup saw db running\nbackup done\ndb got TERM\n", "{shell:?}: {out}");
        // It did not run at startup: the summary before the shutdown
        // does not know it.
        let first = out.stdout.split("backup.sh | ").next().unwrap_or_default();
        assert!(first.contains("web.sh") && !first.contains("backup"), "{shell:?}: {out}");
    }
}

#[test]
fn a_failure_after_startup_runs_the_stop_scripts_too() {
    let sh = shebang(SHELLS[1]);
    let sb = Sandbox::new();
    let dir = dir(&sb, "startup");
    let log = sb.path("order.log");
    let trigger = sb.path("trigger");
    db(&dir, &sh, &log);
    // A service that dies once the main command runs: after startup.
    script(
        &dir,
        "worker.sh",
        &sh,
        &format!(
            "# unitsync: ready=exec:true\nwhile [ ! -e {} ]; do sleep 0.05; done\nexit 3",
            trigger.display()
        ),
    );
    script(
        &dir,
        "backup.sh",
        &sh,
        &format!("# unitsync: on=stop after=db\necho \"backup done\" >>{}", log.display()),
    );
    let main = format!("touch {}; exec sleep 60", trigger.display());
    let out = sb.run(&["up", "--dir", &dir.to_string_lossy(), "--", "sh", "-c", &main]);
    out.code(1);
    out.stderr_has("up: worker failed after startup: exit status 3");
    out.stdout_has("backup.sh  backup  ran at stop");
    assert_eq!(fs::read_to_string(&log).unwrap(), "backup done\ndb got TERM\n", "{out}");
}

#[test]
fn a_hanging_stop_script_is_killed_at_its_stop_timeout_within_the_grace() {
    let sh = shebang(SHELLS[0]);
    let sb = Sandbox::new();
    let dir = dir(&sb, "startup");
    let log = sb.path("order.log");
    db(&dir, &sh, &log);
    script(
        &dir,
        "hang.sh",
        &sh,
        &format!(
            "# unitsync: on=stop after=db stop-timeout=1s\necho hanging >>{}\nwhile :; do sleep 1; done",
            log.display()
        ),
    );
    script(&dir, "fail.sh", &sh, "# unitsync: on=stop\necho no space left >&2; exit 3");
    let started = Instant::now();
    let out = sb.run(&["up", "--grace", "30s", "--dir", &dir.to_string_lossy(), "--", "true"]);
    let took = started.elapsed();
    // The main command succeeded; the stop scripts did not.
    out.code(1);
    out.stderr_has(
        "up: stop script hang.sh: still running at its stop timeout of 1.00s; killing it (SIGKILL)",
    );
    out.stdout_has("hang.sh  hang  failed: killed at its stop timeout of 1.00s");
    out.stdout_has("fail.sh  fail  failed: exit status 3");
    out.stderr_has("fail.sh | no space left");
    out.stderr_has("up: stop script fail.sh: failed: exit status 3");
    // db was held until the hanging script was gone, then stopped.
    assert_eq!(fs::read_to_string(&log).unwrap(), "hanging\ndb got TERM\n", "{out}");
    let (killed, stopping) =
        (out.stderr.find("killing it (SIGKILL)"), out.stderr.find("stopping db"));
    assert!(killed.is_some() && killed < stopping, "{out}");
    // Far less than the grace: the stop timeout ended it, not the grace.
    assert!(took < Duration::from_secs(20), "took {took:?}: {out}");
}

#[test]
fn a_stop_script_without_a_stop_timeout_is_killed_when_the_grace_is_over() {
    let sh = shebang(SHELLS[1]);
    let sb = Sandbox::new();
    let dir = dir(&sb, "startup");
    let log = sb.path("order.log");
    db(&dir, &sh, &log);
    // stop-timeout=0: no SIGKILL of its own; the grace still bounds it.
    script(
        &dir,
        "hang.sh",
        &sh,
        "# unitsync: on=stop after=db stop-timeout=0\nwhile :; do sleep 1; done",
    );
    let started = Instant::now();
    let out = sb.run(&["up", "--grace", "2s", "--dir", &dir.to_string_lossy(), "--", "true"]);
    let took = started.elapsed();
    out.code(1);
    out.stderr_has(
        "up: hang: still running when the grace of 2.00s was over; killing it (SIGKILL)",
    );
    out.stdout_has("hang.sh  hang  failed: killed when the grace of 2.00s was over");
    assert!(took < Duration::from_secs(20), "took {took:?}: {out}");
}

#[test]
fn stop_scripts_do_not_run_after_a_failed_startup() {
    let sb = Sandbox::new();
    let dir = dir(&sb, "startup");
    let sh = shebang(SHELLS[1]);
    script(&dir, "broken.sh", &sh, "exit 4");
    script(
        &dir,
        "backup.sh",
        &sh,
        &format!("# unitsync: on=stop\ntouch {}", sb.path("ran").display()),
    );
    let out = sb.run(&["up", "--dir", &dir.to_string_lossy()]);
    out.code(1);
    out.stderr_has("up: not running the stop scripts (startup failed): backup.sh");
    assert!(!sb.path("ran").exists(), "{out}");
    // A startup script cannot wait for one.
    script(&dir, "broken.sh", &sh, "# unitsync: after=backup\ntrue");
    let out = sb.run(&["up", "--dir", &dir.to_string_lossy()]);
    out.code(1).stderr_has("broken.sh: waits for backup, a stop script (on=stop)");
}

#[test]
fn up_runs_unitsync_dir_when_given_no_directory() {
    let sb = Sandbox::new();
    let dir = dir(&sb, "startup");
    let sh = shebang(SHELLS[0]);
    script(&dir, "hello.sh", &sh, "echo hello from the default");
    let out = output("UNITSYNC_DIR=DIR unitsync up".into(), {
        let mut cmd = sb.cmd(&["up"]);
        cmd.env("UNITSYNC_DIR", &dir);
        cmd
    });
    out.ok().stdout_has("hello.sh | hello from the default\n");
    let missing = sb.path("nowhere");
    let out = output("UNITSYNC_DIR=nowhere unitsync up".into(), {
        let mut cmd = sb.cmd(&["up"]);
        cmd.env("UNITSYNC_DIR", &missing);
        cmd
    });
    out.code(2).stderr_has(&format!(
        "$UNITSYNC_DIR is {}, which is not a directory; create it",
        missing.display()
    ));
    // Neither: says so, and what to do. (This machine has no
    // /etc/unitsync.d; tests/chroot.sh runs a root that has one.)
    assert!(!Path::new("/etc/unitsync.d").exists(), "/etc/unitsync.d exists on the test machine");
    sb.run(&["up"]).code(2).stderr_has(
        "$UNITSYNC_DIR is not set and /etc/unitsync.d does not exist; put startup scripts in /etc/unitsync.d",
    );
    // With a command, no directory is no error: the init alone.
    sb.run(&["up", "--", "true"]).ok();
}

#[test]
fn env_files_reach_the_scripts_and_the_main_command_as_written() {
    for shell in SHELLS {
        let sh = shebang(shell);
        let sb = Sandbox::new();
        let dir = dir(&sb, "startup");
        fs::write(
            sb.path("all.env"),
            "# for everyone\nGREETING=\"hello there\"\nSHARED=from-up\nRAW='$HOME and \\n'\n",
        )
        .unwrap();
        // Relative to the script's directory; nearer than `up --env-file`.
        fs::write(dir.join("app.env"), "export SHARED=from-app # a comment\n\nPORT=5432\n")
            .unwrap();
        script(
            &dir,
            "app.sh",
            &sh,
            // printf, not echo: dash's echo reads backslashes.
            "# unitsync: env-file=app.env\nprintf '%s\\n' \"app: $GREETING/$SHARED/$PORT/$RAW\"",
        );
        script(&dir, "plain.sh", &sh, "echo \"plain: $SHARED/${PORT:-none}\"");
        let env_file = sb.path("all.env");
        let out = sb.run(&[
            "up",
            "--env-file",
            &env_file.to_string_lossy(),
            "--dir",
            &dir.to_string_lossy(),
            "--",
            "sh",
            "-c",
            "echo \"main: $GREETING/$SHARED\"",
        ]);
        out.ok();
        out.stdout_has("app.sh   | app: hello there/from-app/5432/$HOME and \\n\n");
        out.stdout_has("plain.sh | plain: from-up/none\n");
        out.stdout_has("\nmain: hello there/from-up\n");
    }
}

#[test]
fn a_malformed_env_file_is_refused_before_anything_runs() {
    let sb = Sandbox::new();
    let dir = dir(&sb, "startup");
    let sh = shebang(SHELLS[0]);
    let ran = sb.path("ran");
    script(&dir, "a.sh", &sh, &format!("touch {}", ran.display()));
    fs::write(dir.join("b.env"), "A=1\n\nB \"x\"\n").unwrap();
    script(&dir, "b.sh", &sh, "# unitsync: env-file=b.env\ntrue");
    let out = sb.run(&["up", "--dir", &dir.to_string_lossy()]);
    out.code(1).stderr_has(&format!(
        "b.sh: env-file=: {}:3: \"B \\\"x\\\"\" is not KEY=VALUE",
        dir.join("b.env").display()
    ));
    assert!(!ran.exists(), "{out}");
    fs::remove_file(dir.join("b.sh")).unwrap();
    let bad = sb.path("bad.env");
    fs::write(&bad, "OK=1\nX='unclosed\n").unwrap();
    let out =
        sb.run(&["up", "--env-file", &bad.to_string_lossy(), "--dir", &dir.to_string_lossy()]);
    out.code(2).stderr_has(&format!(
        "up: --env-file {}:2: X= has no closing ' (a value is one line)",
        bad.display()
    ));
    assert!(!ran.exists(), "{out}");
}

/// JSON with comments (JSONC, as devcontainer.json is written) as JSON:
/// `//` and `/* */` comments outside strings removed.
fn strip_comments(text: &str) -> String {
    let (mut out, mut chars) = (String::new(), text.chars().peekable());
    let mut in_string = false;
    while let Some(c) = chars.next() {
        if in_string {
            out.push(c);
            match c {
                '\\' => out.extend(chars.next()),
                '"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match (c, chars.peek()) {
            ('"', _) => {
                in_string = true;
                out.push(c);
            }
            ('/', Some('/')) => while chars.next_if(|&c| c != '\n').is_some() {},
            ('/', Some('*')) => {
                chars.next();
                let mut last = ' ';
                for c in chars.by_ref() {
                    if last == '*' && c == '/' {
                        break;
                    }
                    last = c;
                }
                out.push(' ');
            }
            _ => out.push(c),
        }
    }
    out
}

#[test]
fn comments_are_stripped_outside_strings_only() {
    let text = "// top\n{\"a\": \"x // y /* z */\", /* b */ \"b\": \"\\\"//\" // end\n}";
    let value: serde_json::Value = serde_json::from_str(&strip_comments(text)).unwrap();
    assert_eq!(value, serde_json::json!({"a": "x // y /* z */", "b": "\"//"}));
}

#[test]
fn the_devcontainer_example_is_valid_and_waits_with_unitsync() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/devcontainer");
    let text = fs::read_to_string(dir.join("devcontainer.json")).unwrap();
    assert!(text.contains("//") && text.contains("/*"), "the example shows its comments");
    let json: serde_json::Value = serde_json::from_str(&strip_comments(&text))
        .unwrap_or_else(|e| panic!("devcontainer.json is not JSON with comments: {e}"));
    let dockerfile = json["build"]["dockerfile"].as_str().expect("build.dockerfile");
    let dockerfile = fs::read_to_string(dir.join(dockerfile)).unwrap();
    assert!(dockerfile.contains(r#"ENTRYPOINT ["unitsync", "up""#), "{dockerfile}");
    assert!(dockerfile.contains("COPY unitsync.d/ /etc/unitsync.d/"), "{dockerfile}");
    let post_start = json["postStartCommand"].as_str().expect("postStartCommand");
    assert!(post_start.starts_with("unitsync ") && post_start.contains(" wait "), "{post_start}");
    assert!(post_start.contains("--timeout"), "{post_start}");
    assert_eq!(json["waitFor"], "postStartCommand");
    // The units it waits for are the scripts' units.
    let scripts = dir.join("unitsync.d");
    let heads: String = ["10-dockerd.sh", "20-db.sh"]
        .iter()
        .map(|s| fs::read_to_string(scripts.join(s)).unwrap())
        .collect();
    assert!(heads.contains("unit=dockerd ready=unix:/var/run/docker.sock"), "{heads}");
    assert!(heads.contains("unit=db after=dockerd"), "{heads}");
    // And the headers are valid: `up` refuses a bad one before anything
    // runs, so a directory whose every script fails at once on a missing
    // command (no dockerd, no docker here) still shows they parsed.
    let sb = Sandbox::new();
    let out = output("unitsync up".into(), {
        let mut cmd = sb.cmd(&["up", "--script-timeout", "1s"]);
        cmd.env("UNITSYNC_DIR", &scripts).env("PATH", sb.path("bin"));
        cmd
    });
    out.code(1);
    out.stdout_has("10-dockerd.sh  dockerd");
    out.stderr_has("up: not running the stop scripts (startup failed): 90-db-backup.sh");
}
