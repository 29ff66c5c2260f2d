//! Running in pods and compose projects: `wait --once`, the one-call check
//! that readiness and health probes run, and the examples in
//! `examples/kubernetes/` and `examples/compose/`, parsed and checked for
//! the fields their READMEs explain.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;

use serde_json::Value;

use crate::users::{as_user, shared_sandbox};
use crate::util::*;

#[test]
fn wait_once_answers_at_once_for_each_status() {
    let sb = Sandbox::new();
    let _server = sb.serve(&[]);
    let once = |units: &[&str]| {
        let mut args = vec!["wait"];
        args.extend_from_slice(units);
        args.push("--once");
        sb.run(&args)
    };
    // `why` up to the time, which varies.
    let not_yet = |units: &[&str], why: &str| {
        let heard = once(units);
        heard.code(4).stdout_is("");
        let said = format!("unitsync: wait {}: not yet completed or ready: {why}", units.join(" "));
        assert!(heard.stderr.starts_with(&said) && heard.stderr.lines().count() == 1, "{heard}");
    };
    // Not registered, pending, started: not yet (exit 4), and nothing is
    // registered by asking.
    not_yet(&["ghost"], "ghost (never registered)");
    sb.run(&["status", "ghost", "--json"]).ok().stdout_has("\"status\": \"not registered\"");
    sb.run(&["want", "app", "db"]).ok();
    not_yet(&["app"], "app (registered, not started)");
    sb.run(&["start", "db"]).ok();
    not_yet(&["db"], "db (started ");
    // Ready and completed: exit 0, silently.
    sb.run(&["ready", "db"]).ok();
    once(&["db"]).ok().stdout_is("").stderr_is("");
    sb.run(&["start", "app"]).ok();
    sb.run(&["complete", "app"]).ok();
    once(&["app", "db"]).ok().stdout_is("").stderr_is("");
    // Several: the ones not yet are named, the others are not.
    sb.run(&["want", "web"]).ok();
    not_yet(&["app", "web", "db"], "web (registered, not started)");
    // Failed: exit 5 with the reason.
    sb.run(&["fail", "web", "--reason", "port taken"]).ok();
    once(&["app", "web"]).code(5).stderr_is("unitsync: web failed: port taken\n");
    // The deadline variables do not make it wait; --timeout is refused.
    let mut slow = sb.cmd(&["wait", "later", "--once"]);
    slow.env("UNITSYNC_TIMEOUT", "1h");
    let heard = output("UNITSYNC_TIMEOUT=1h unitsync wait later --once".to_owned(), slow);
    heard.code(4).stderr_has("later (never registered)");
    sb.run(&["wait", "a", "--once", "--timeout", "0"]).code(2).stderr_has(
        "--once checks without waiting: it takes no --timeout or --poll; see 'unitsync wait --help'",
    );
}

#[test]
fn wait_once_without_a_server_exits_3_at_once() {
    let sb = Sandbox::new();
    sb.run(&["wait", "app", "--once"]).code(3).stderr_is(&format!(
        "unitsync: cannot reach the server at {}: no such socket; is the server running? start \
         it with 'unitsync serve'\n",
        sb.socket().display()
    ));
}

/// The documents of a YAML file, as JSON, read by Python's yaml module
/// (python3-yaml: scripts/test.sh installs it; missing, the test fails).
fn yaml_documents(path: &Path) -> Vec<Value> {
    static PYTHON: OnceLock<&str> = OnceLock::new();
    let has_yaml = |python: &str| {
        let check = Command::new(python).args(["-c", "import yaml"]).stderr(Stdio::null()).status();
        check.is_ok_and(|s| s.success())
    };
    let python = PYTHON.get_or_init(|| {
        ["python3", "/usr/bin/python3"].into_iter().find(|p| has_yaml(p)).unwrap_or_else(|| {
            panic!("no python3 can import yaml: install python3-yaml (scripts/test.sh does)")
        })
    });
    let mut cmd = Command::new(python);
    cmd.args([
        "-c",
        "import json, sys, yaml; print(json.dumps(list(yaml.safe_load_all(open(sys.argv[1])))))",
    ]);
    cmd.arg(path);
    let heard = output(format!("{python} yaml-to-json {}", path.display()), cmd);
    heard.ok();
    serde_json::from_str(&heard.stdout).unwrap_or_else(|e| panic!("{e}{heard}"))
}

/// The example file at `path` in the repository.
fn example(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

/// A JSON array of strings as a Vec.
fn strings(value: &Value) -> Vec<String> {
    let array = value.as_array().unwrap_or_else(|| panic!("not an array: {value}"));
    array
        .iter()
        .map(|v| v.as_str().unwrap_or_else(|| panic!("not a string: {v}")).to_owned())
        .collect()
}

/// The item of a JSON array whose `name` is `name`.
fn named<'a>(items: &'a Value, name: &str) -> &'a Value {
    let array = items.as_array().unwrap_or_else(|| panic!("not an array: {items}"));
    array.iter().find(|i| i["name"] == name).unwrap_or_else(|| panic!("no {name:?} in {items}"))
}

/// One container of an example, as this machine runs it: a process as
/// the container's user, with the volumes' paths made the sandbox's.
#[derive(Debug)]
struct Container {
    name: String,
    command: Vec<String>,
    env: Vec<(String, String)>,
    uid: u32,
    gid: u32,
    /// Its supplementary groups.
    groups: Vec<u32>,
    /// The readiness (or health) probe's command.
    probe: Option<Vec<String>>,
}

/// The containers of `examples/kubernetes/pod.yaml`, checked for what
/// its README explains on the way: the sidecar first.
fn kubernetes_pod() -> (Vec<Container>, u32) {
    let docs = yaml_documents(&example("examples/kubernetes/pod.yaml"));
    let [pod] = &docs[..] else { panic!("one document, a Pod: {docs:?}") };
    assert_eq!((&pod["apiVersion"], &pod["kind"]), (&Value::from("v1"), &Value::from("Pod")));
    let spec = &pod["spec"];
    let fs_group = spec["securityContext"]["fsGroup"].as_u64().expect("an fsGroup") as u32;
    let volume = named(&spec["volumes"], "unitsync");
    assert!(volume["emptyDir"].is_object(), "the socket's volume is an emptyDir: {volume}");
    let sidecar = named(&spec["initContainers"], "unitsync");
    assert_eq!(sidecar["restartPolicy"], "Always", "a native sidecar: {sidecar}");
    let serve = strings(&sidecar["command"]);
    let group = fs_group.to_string();
    let state = "/run/unitsync/state".to_owned();
    assert!(serve[..2] == ["unitsync", "serve"] && serve.contains(&group), "{serve:?}");
    assert!(serve.windows(2).any(|w| w == ["--state", state.as_str()]), "{serve:?}");
    assert_eq!(strings(&sidecar["startupProbe"]["exec"]["command"]), ["unitsync", "ping"]);
    let mut containers = vec![kubernetes_container(sidecar, None, fs_group)];
    let apps = spec["containers"].as_array().expect("containers");
    for app in apps {
        let probe = app.get("readinessProbe").map(|p| strings(&p["exec"]["command"]));
        if let Some(probe) = &probe {
            assert!(probe[..2] == ["unitsync", "wait"] && probe.ends_with(&["--once".to_owned()]));
        }
        containers.push(kubernetes_container(app, probe, fs_group));
    }
    assert!(containers.iter().any(|c| c.probe.is_some()), "a readinessProbe checks a unit");
    let socket = &containers[0].env;
    for c in &containers {
        assert_eq!(&c.env, socket, "{}: the same UNITSYNC_SOCKET as the sidecar", c.name);
    }
    assert!(socket.contains(&("UNITSYNC_SOCKET".into(), "/run/unitsync/unitsync.sock".into())));
    (containers, fs_group)
}

fn kubernetes_container(c: &Value, probe: Option<Vec<String>>, fs_group: u32) -> Container {
    let name = c["name"].as_str().expect("a name").to_owned();
    let mounts = &c["volumeMounts"];
    assert_eq!(named(mounts, "unitsync")["mountPath"], "/run/unitsync", "{name}'s mounts");
    let mut command = strings(&c["command"]);
    if let Some(args) = c.get("args") {
        command.extend(strings(args));
    }
    let env = c["env"].as_array().expect("env").iter();
    let env =
        env.map(|e| (e["name"].as_str().unwrap().into(), e["value"].as_str().unwrap().into()));
    let user = &c["securityContext"];
    let id = |key: &str| user[key].as_u64().unwrap_or_else(|| panic!("{name}: {key}")) as u32;
    let (uid, gid, groups) = (id("runAsUser"), id("runAsGroup"), vec![fs_group]);
    Container { env: env.collect(), uid, gid, groups, command, probe, name }
}

#[test]
fn the_kubernetes_example_is_a_native_sidecar_with_probes() {
    let (containers, fs_group) = kubernetes_pod();
    let names: Vec<&str> = containers.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["unitsync", "workspace", "web", "agent"]);
    let uids: std::collections::BTreeSet<u32> = containers.iter().map(|c| c.uid).collect();
    assert_eq!(uids.len(), containers.len(), "each container its own user");
    assert!(containers.iter().all(|c| c.gid != fs_group), "the group comes from fsGroup only");
}

/// An example's containers running as processes here, each as its
/// user and groups, as the kubelet or compose would run them; stopped with
/// SIGTERM (then SIGKILL) on drop.
struct Running<'a> {
    sb: &'a Sandbox,
    bin: PathBuf,
    /// The example's paths, port and host names, and what they are here.
    swaps: Vec<(String, String)>,
    procs: Vec<(String, Child)>,
    logs: Vec<(String, PathBuf)>,
    /// Processes the containers started in the background, by pid.
    adopted: Vec<u32>,
}

impl<'a> Running<'a> {
    /// `volumes`: the example's mount paths, each made a directory of
    /// root's with a group and a mode (an emptyDir with an fsGroup is
    /// group fsGroup, 2777; a fresh named volume root's, 755).
    fn new(sb: &'a Sandbox, unitsync: &Path, volumes: &[(&str, u32, u32)]) -> Running<'a> {
        require("busybox");
        let bin = sb.path("pod-bin");
        if bin.exists() {
            fs::remove_dir_all(&bin).unwrap();
        }
        fs::create_dir(&bin).unwrap();
        fs::set_permissions(&bin, fs::Permissions::from_mode(0o755)).unwrap();
        let busybox = std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
            .map(|dir| dir.join("busybox"))
            .find(|p| p.is_file())
            .expect("busybox on PATH");
        for (name, target) in [("unitsync", unitsync), ("coder", unitsync)] {
            std::os::unix::fs::symlink(target, bin.join(name)).unwrap();
        }
        for applet in ["httpd", "wget", "sleep", "sh"] {
            std::os::unix::fs::symlink(&busybox, bin.join(applet)).unwrap();
        }
        let mut swaps = Vec::new();
        for (i, &(volume, group, mode)) in volumes.iter().enumerate() {
            // A volume may be there already, from a run before this one.
            let dir = sb.path(&format!("volume{i}"));
            if !dir.exists() {
                fs::create_dir(&dir).unwrap();
            }
            std::os::unix::fs::chown(&dir, Some(0), Some(group)).unwrap();
            fs::set_permissions(&dir, fs::Permissions::from_mode(mode)).unwrap();
            swaps.push((volume.to_string(), dir.display().to_string()));
        }
        // The examples' port may be taken on this machine, and the pod
        // tests run at once: each project gets a port of its own, one the
        // kernel just handed out (bound, then freed).
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        swaps.push(("8080".to_owned(), port.to_string()));
        Running { sb, bin, swaps, procs: Vec::new(), logs: Vec::new(), adopted: Vec::new() }
    }

    /// `text` with the example's paths, port and names made this machine's,
    /// in one pass: a path here may hold one of the example's (`/tmp`).
    fn swap(&self, text: &str) -> String {
        let mark = |i: usize| format!("\u{0}{i}\u{0}");
        let marked = self.swaps.iter().enumerate();
        let text =
            marked.fold(text.to_owned(), |text, (i, (from, _))| text.replace(from, &mark(i)));
        let swaps = self.swaps.iter().enumerate();
        swaps.fold(text, |text, (i, (_, to))| text.replace(&mark(i), to))
    }

    /// `argv` as container `c` would run it.
    fn command(&self, c: &Container, argv: &[String]) -> Command {
        let user = as_user(c.uid, c.gid, &c.groups);
        let mut cmd = Command::new(&user[0]);
        cmd.args(&user[1..]).args(argv.iter().map(|a| self.swap(a)));
        cmd.env_clear()
            .env("PATH", format!("{}:/usr/sbin:/usr/bin:/sbin:/bin", self.bin.display()));
        for (key, value) in &c.env {
            cmd.env(key, self.swap(value));
        }
        cmd.current_dir("/").stdin(Stdio::null());
        cmd
    }

    /// Starts container `c`; its output goes to a log of its own.
    fn start(&mut self, c: &Container) {
        let log = self.sb.path(&format!("{}.{}.log", c.name, self.logs.len()));
        let mut cmd = self.command(c, &c.command);
        cmd.stdout(fs::File::create(&log).unwrap()).stderr(fs::File::create(&log).unwrap());
        let child = cmd.spawn().unwrap_or_else(|e| panic!("cannot start {}: {e}", c.name));
        self.procs.push((c.name.clone(), child));
        self.logs.push((c.name.clone(), log));
    }

    /// The newest log of container `name`.
    fn log(&self, name: &str) -> String {
        let (_, path) = self.logs.iter().rev().find(|(n, _)| n == name).expect("started");
        fs::read_to_string(path).unwrap_or_default()
    }

    /// Runs `argv` once in container `c`, as a probe does.
    fn probe(&self, c: &Container, argv: &[String]) -> Output {
        output(format!("{} (in {})", argv.join(" "), c.name), self.command(c, argv))
    }

    /// Waits until `argv` passes in `c`, as the kubelet retries a probe.
    fn until_passes(&self, c: &Container, argv: &[String]) {
        let mut last = None;
        let passed = poll(|| {
            let heard = self.probe(c, argv);
            let ok = heard.code == Some(0);
            last = Some(heard);
            ok
        });
        let logs: Vec<String> =
            self.logs.iter().map(|(n, _)| format!("--- {n}:\n{}", self.log(n))).collect();
        assert!(
            passed,
            "{} never passed; last{}\n{}",
            argv.join(" "),
            last.unwrap(),
            logs.join("")
        );
    }

    /// Kills container `name` at once (SIGKILL), as a crash would.
    fn kill(&mut self, name: &str) {
        let at = self.procs.iter().position(|(n, _)| n == name).expect("running");
        let (_, mut child) = self.procs.remove(at);
        child.kill().unwrap();
        child.wait().unwrap();
    }
}

impl Drop for Running<'_> {
    fn drop(&mut self) {
        for (_, child) in &self.procs {
            let _ = Command::new("kill").args(["-s", "TERM", &child.id().to_string()]).status();
        }
        for (name, child) in &mut self.procs {
            let _ = wait_for_exit_or_kill(child, name);
        }
        for pid in &self.adopted {
            let _ = Command::new("kill").args(["-s", "KILL", &pid.to_string()]).status();
        }
    }
}

/// Waits a while for a stopped container, then kills it.
fn wait_for_exit_or_kill(child: &mut Child, name: &str) -> Option<i32> {
    let stopped = poll(|| child.try_wait().is_ok_and(|s| s.is_some()));
    if !stopped {
        eprintln!("{name} ignored SIGTERM: killing it");
        let _ = child.kill();
    }
    child.wait().ok().and_then(|s| s.code())
}

#[test]
fn the_kubernetes_pod_runs_here_as_four_users_in_one_group() {
    let (containers, group) = kubernetes_pod();
    let (sb, unitsync) = shared_sandbox();
    let volumes = [("/run/unitsync", group, 0o2777), ("/workspace", group, 0o2777)];
    let mut pod = Running::new(&sb, &unitsync, &volumes);
    let sidecar = &containers[0];
    let startup = vec!["unitsync".to_owned(), "ping".to_owned()];
    // The sidecar first, and the others once its startupProbe passes.
    pod.start(sidecar);
    pod.until_passes(sidecar, &startup);
    for c in &containers[1..] {
        pod.start(c);
    }
    for c in &containers[1..] {
        if let Some(probe) = &c.probe {
            pod.until_passes(c, probe);
        }
    }
    // In order: the agent fetched what web serves, which deps made.
    let log = pod.log("unitsync");
    for (before, after) in [
        ("git-clone completed", "deps started"),
        ("deps completed", "web started"),
        ("web ready", "agent started"),
    ] {
        assert!(at(&log, before) <= at(&log, after), "{before} after {after}:\n{log}");
    }
    let fetched = fs::read_to_string(pod.swap("/workspace/agent.out")).unwrap_or_default();
    assert_eq!(fetched, "hello from the repository\n", "{}", pod.log("agent"));
    // The sidecar dies; the probes say the server is unreachable (3) until
    // the kubelet restarts it, and then answer as before: --state kept all.
    pod.kill("unitsync");
    let agent = containers.iter().find(|c| c.name == "agent").unwrap();
    let probe = agent.probe.as_ref().unwrap();
    pod.probe(agent, probe).code(3).stderr_has("connection refused");
    pod.start(sidecar);
    pod.until_passes(sidecar, &startup);
    pod.probe(agent, probe).ok();
    let listed = pod.probe(sidecar, &["unitsync".into(), "list".into()]);
    listed.ok();
    for (unit, status) in [
        ("agent", "completed"),
        ("deps", "completed"),
        ("git-clone", "completed"),
        ("web", "ready"),
    ] {
        let row = listed.stdout.lines().find(|l| l.starts_with(&format!("{unit} ")));
        assert!(row.is_some_and(|r| r.contains(status)), "{unit} {status}?\n{listed}");
    }
}

/// Containers of a pod see each other's sockets but not each other's
/// processes: a peer in another PID namespace has pid 0 for the server,
/// so its groups must come from the connection, not from /proc.
#[test]
fn a_member_outside_the_servers_pid_namespace_is_served_by_its_groups() {
    let (sb, bin) = shared_sandbox();
    require("unshare");
    let wrapper = ["unshare", "--pid", "--fork", "--kill-child"];
    let server = sb.serve_via(&wrapper, &bin, &["--group", "4343"]);
    // Only a supplementary group makes it a member.
    let member = as_user(4244, 4244, &[4343]);
    let member: Vec<&str> = member.iter().map(String::as_str).collect();
    sb.run_via(&member, &bin, &["run", "db", "--", "true"]).ok();
    sb.run_via(&member, &bin, &["wait", "db", "--once"]).ok();
    let outsider = as_user(4245, 4245, &[4300]);
    let outsider: Vec<&str> = outsider.iter().map(String::as_str).collect();
    fs::set_permissions(sb.socket().parent().unwrap(), fs::Permissions::from_mode(0o711)).unwrap();
    fs::set_permissions(sb.socket(), fs::Permissions::from_mode(0o666)).unwrap();
    let heard = sb.run_via(&outsider, &bin, &["ping"]);
    heard.code(3).stderr_has("permission denied: uid 4245 may not use this server");
    assert!(server.log().contains("db completed"), "{}", server.log());
}

/// The services of `examples/compose/compose.yaml`, checked for what its
/// README explains on the way: the serving one first.
fn compose_project() -> Vec<Container> {
    let docs = yaml_documents(&example("examples/compose/compose.yaml"));
    let [project] = &docs[..] else { panic!("one document: {docs:?}") };
    assert!(project["volumes"].get("unitsync").is_some(), "a named volume: {project}");
    let services = project["services"].as_object().expect("services");
    let mut containers = Vec::new();
    for (name, service) in services {
        let mut command = strings(&service["entrypoint"]);
        command.extend(strings(&service["command"]));
        let volumes = strings(&service["volumes"]);
        assert!(volumes.contains(&"unitsync:/run/unitsync".to_owned()), "{name}: {volumes:?}");
        let env = service["environment"].as_object().expect("environment").iter();
        let env: Vec<(String, String)> =
            env.map(|(k, v)| (k.clone(), v.as_str().expect("a string").to_owned())).collect();
        let socket = ("UNITSYNC_SOCKET".to_owned(), "/run/unitsync/unitsync.sock".to_owned());
        assert!(env.contains(&socket), "{name}: {env:?}");
        let probe = strings(&service["healthcheck"]["test"]);
        assert!(probe[..3] == ["CMD", "unitsync", "wait"] && probe[4] == "--once", "{probe:?}");
        let user = service["user"].as_str().unwrap_or("0:0");
        let (uid, gid) = user.split_once(':').expect("user UID:GID");
        let groups = service.get("group_add").map(strings).unwrap_or_default();
        containers.push(Container {
            name: name.clone(),
            command,
            env,
            uid: uid.parse().unwrap(),
            gid: gid.parse().unwrap(),
            groups: groups.iter().map(|g| g.parse().unwrap()).collect(),
            probe: Some(probe[1..].to_vec()),
        });
    }
    let serving = |c: &Container| c.command.iter().any(|a| a.contains("unitsync serve"));
    containers.sort_by_key(|c| !serving(c));
    assert!(serving(&containers[0]) && !containers[1..].iter().any(serving), "one serves");
    containers
}

/// Whether the compose example's `unitsync` volume is a tmpfs: one that
/// lives only while the project's containers run.
fn compose_volume_is_tmpfs() -> bool {
    let docs = yaml_documents(&example("examples/compose/compose.yaml"));
    let opts = &docs[0]["volumes"]["unitsync"]["driver_opts"];
    opts["type"].as_str() == Some("tmpfs")
}

/// Unmounts a volume's tmpfs when the project is down (or the test fails).
struct Tmpfs(PathBuf);

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// Issue 19 §4: `docker compose down` and `up` again, on the one volume
/// the project declares. Its volume is a tmpfs, mounted here while the
/// project runs as Docker's local driver would; the second run starts from
/// an empty graph, not from the first run's state file.
#[test]
fn the_compose_project_runs_twice_on_its_volume_from_a_fresh_graph() {
    assert!(compose_volume_is_tmpfs(), "the compose example's volume must not outlive the project");
    let containers = compose_project();
    let (sb, unitsync) = shared_sandbox();
    let volume = sb.path("volume0");
    fs::create_dir(&volume).unwrap();
    for run in 0..2 {
        let mounted = Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=16m", "tmpfs"])
            .arg(&volume)
            .status()
            .unwrap();
        assert!(mounted.success(), "cannot mount a tmpfs on {}", volume.display());
        let _tmpfs = Tmpfs(volume.clone());
        let log = run_compose_project(&sb, &unitsync, &containers);
        assert!(log.contains("recovered 0 changes"), "run {run} replayed an old graph:\n{log}");
    }
}

#[test]
fn the_compose_services_run_here_with_healthchecks() {
    let containers = compose_project();
    let names: Vec<&str> = containers.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["web", "agent"]);
    let (sb, unitsync) = shared_sandbox();
    run_compose_project(&sb, &unitsync, &containers);
}

/// Runs the compose project until both healthchecks pass, checks the
/// order and the agent's fetch, stops it; returns the server's log.
fn run_compose_project(sb: &Sandbox, unitsync: &Path, containers: &[Container]) -> String {
    let volumes = [("/run/unitsync", 0, 0o755), ("/srv", 0, 0o755), ("/tmp", 0, 0o1777)];
    let mut project = Running::new(sb, unitsync, &volumes);
    // Services reach each other by name.
    project.swaps.push(("http://web:".into(), "http://127.0.0.1:".into()));
    for c in containers {
        project.start(c);
    }
    let (web, agent) = (&containers[0], &containers[1]);
    let ping = ["unitsync".to_owned(), "ping".to_owned()];
    project.until_passes(web, &ping);
    // The server web started in the background: stopped with the others.
    let pong = project.probe(web, &ping);
    let pid = pong.stdout.rsplit_once("server pid ").expect("a pid").1.trim().parse().unwrap();
    project.adopted.push(pid);
    for c in containers {
        project.until_passes(c, c.probe.as_ref().unwrap());
    }
    let log = fs::read_to_string(project.swap("/run/unitsync/server.log")).unwrap();
    for (before, after) in [("git-clone completed", "web started"), ("web ready", "agent started")]
    {
        assert!(at(&log, before) <= at(&log, after), "{before} after {after}:\n{log}");
    }
    let fetched = fs::read_to_string(project.swap("/tmp/agent.out")).unwrap_or_default();
    assert_eq!(fetched, "hello from the repository\n", "{}", project.log("agent"));
    assert_eq!(agent.uid, 1002, "the agent is another user than the server");
    fs::remove_file(project.swap("/tmp/agent.out")).unwrap();
    log
}
