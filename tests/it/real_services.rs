//! Real services under `up` (README.md, "As a container's init"): PostgreSQL, nginx and
//! redis, each stopped its own way (`stop-signal=`), and nothing lost.
//! `scripts/test.sh` installs them when missing; a test fails loudly if
//! one is not there.

use std::fs;
use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::util::*;

/// A TCP port nobody listens on now.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn script(dir: &Path, name: &str, text: &str) {
    let path = dir.join(name);
    fs::write(&path, text).unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
}

/// `unitsync up --dir DIR -- sh -c MAIN`, to the end.
fn up(sb: &Sandbox, dir: &Path, main: &str) -> Output {
    sb.run(&["up", "--dir", &dir.to_string_lossy(), "--", "sh", "-c", main])
}

/// Live (not zombie) processes whose executable is `exe`, working in
/// `cwd` (every PostgreSQL process works in its data directory, which
/// tells one test's cluster from another's).
fn running(exe: &Path, cwd: &Path) -> Vec<String> {
    let mut found = Vec::new();
    for entry in fs::read_dir("/proc").unwrap().flatten() {
        let pid = entry.file_name().to_string_lossy().into_owned();
        if pid.parse::<u32>().is_err() || proc_state(&pid).is_some_and(|(s, _)| s == "Z") {
            continue;
        }
        if fs::read_link(entry.path().join("exe")).is_ok_and(|e| e == exe)
            && fs::read_link(entry.path().join("cwd")).is_ok_and(|d| d == cwd)
        {
            found.push(pid);
        }
    }
    found
}

/// The newest PostgreSQL's binaries, as the Debian packages install them.
fn postgres_bin() -> PathBuf {
    let versions = fs::read_dir("/usr/lib/postgresql").ok().into_iter().flatten().flatten();
    let mut bins: Vec<PathBuf> = versions.map(|v| v.path().join("bin")).collect();
    bins.retain(|bin| bin.join("postgres").is_file());
    bins.sort_by_key(|bin| {
        bin.to_string_lossy().rsplit('/').nth(1).and_then(|v| v.parse::<u32>().ok())
    });
    bins.pop().unwrap_or_else(|| {
        panic!("PostgreSQL is not installed (no /usr/lib/postgresql/*/bin/postgres): scripts/test.sh installs it")
    })
}

/// `id -u NAME` and `id -g NAME`.
fn ids(name: &str) -> (u32, u32) {
    let id = |flag: &str| {
        let out = Command::new("id").args([flag, name]).output().unwrap();
        assert!(out.status.success(), "no user {name}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).trim().parse::<u32>().unwrap()
    };
    (id("-u"), id("-g"))
}

/// A fresh PostgreSQL cluster in the sandbox, owned by the postgres user:
/// its data directory and its socket directory.
struct Cluster {
    bin: PathBuf,
    data: PathBuf,
    sock: PathBuf,
    /// The prefix that runs a command as the postgres user.
    as_postgres: String,
}

fn cluster(sb: &Sandbox) -> Cluster {
    assert!(is_root(), "this test runs PostgreSQL as the postgres user: run it as root");
    let bin = postgres_bin();
    let (uid, gid) = ids("postgres");
    // The postgres user owns the cluster and its socket directory.
    // It must reach it through the sandbox, whatever the umask.
    fs::set_permissions(&sb.dir, fs::Permissions::from_mode(0o755)).unwrap();
    let pg = sb.path("pg");
    fs::create_dir(&pg).unwrap();
    fs::set_permissions(&pg, fs::Permissions::from_mode(0o700)).unwrap();
    std::os::unix::fs::chown(&pg, Some(uid), Some(gid)).unwrap();
    let (data, sock) = (pg.join("data"), pg.join("sock"));
    let as_postgres = format!("setpriv --reuid={uid} --regid={gid} --clear-groups");
    let initdb = sb.shell(
        "sh",
        &format!(
            "{as_postgres} {} -D {} -U postgres --auth=trust --no-sync >/dev/null && {as_postgres} mkdir {}",
            bin.join("initdb").display(),
            data.display(),
            sock.display()
        ),
    );
    initdb.ok();
    Cluster { bin, data, sock, as_postgres }
}

/// nginx's configuration in `root`, listening on `port`: `/` answers
/// hello, `/healthz` 500 while `root/unhealthy` exists.
fn nginx_conf(root: &Path, port: u16) {
    fs::create_dir(root).unwrap();
    let r = root.display();
    fs::write(
        root.join("nginx.conf"),
        format!(
            "daemon off;\nmaster_process on;\nworker_processes 1;\npid {r}/nginx.pid;\n\
             error_log stderr notice;\nevents {{}}\n\
             http {{\n  access_log off;\n  client_body_temp_path {r}/body;\n  proxy_temp_path {r}/proxy;\n\
             fastcgi_temp_path {r}/fastcgi;\n  uwsgi_temp_path {r}/uwsgi;\n  scgi_temp_path {r}/scgi;\n\
             server {{ listen 127.0.0.1:{port};\n\
               location /healthz {{ if (-f {r}/unhealthy) {{ return 500; }} return 200 \"ok\\n\"; }}\n\
               location / {{ return 200 \"hello\\n\"; }} }}\n}}\n"
        ),
    )
    .unwrap();
}

#[test]
fn postgres_stops_fast_on_int_with_a_client_connected_and_needs_no_recovery() {
    let sb = Sandbox::new();
    let Cluster { bin, data, sock, as_postgres } = cluster(&sb);
    let port = free_port();
    let dir = sb.path("startup");
    fs::create_dir(&dir).unwrap();
    let isready =
        format!("{} -q -h {} -p {port}", bin.join("pg_isready").display(), sock.display());
    script(
        &dir,
        "db.sh",
        &format!(
            "#!/bin/sh\n\
             # unitsync: ready=\"exec:{isready}\" ready-timeout=60s\n\
             # unitsync: stop-signal=INT stop-timeout=30s\n\
             exec {as_postgres} {} -D {} -k {} -p {port} -c listen_addresses=\n",
            bin.join("postgres").display(),
            data.display(),
            sock.display()
        ),
    );
    let psql =
        format!("{} -X -q -h {} -p {port} -U postgres", bin.join("psql").display(), sock.display());
    // CMD writes, then leaves an idle client connected (in a session of
    // its own, so that it is still there when the server is stopped), and
    // exits once the server sees it: the shutdown starts with it there.
    let main = format!(
        "set -e\n\
         {psql} -c 'create table t (i int)'\n\
         i=0; while [ $i -lt 100 ]; do {psql} -c \"insert into t values ($i)\"; i=$((i+1)); done\n\
         PGAPPNAME=idle setsid sh -c 'sleep 600 | {psql}' &\n\
         until [ \"$({psql} -tA -c \"select count(*) from pg_stat_activity where application_name = 'idle'\")\" = 1 ]; do sleep 0.05; done\n\
         echo writer done\n"
    );
    let out = up(&sb, &dir, &main);
    out.ok().stdout_has("writer done").stdout_has("db.sh");
    // Stopped by its stop signal, within its stop timeout, not killed.
    assert!(!out.stdout.contains("killed after") && !out.stderr.contains("SIGKILL"), "{out}");
    assert!(running(&bin.join("postgres"), &data).is_empty(), "postgres outlived up{out}");
    let control = Command::new(bin.join("pg_controldata")).arg(&data).output().unwrap();
    let control = String::from_utf8_lossy(&control.stdout);
    assert!(
        control.contains("Database cluster state:               shut down\n"),
        "{control}{out}"
    );
    // The next start does no recovery, and the rows are there.
    let out = up(&sb, &dir, &format!("{psql} -tA -c 'select count(*) from t'"));
    out.ok().stdout_has("100");
    for recovery in ["database system was not properly shut down", "redo starts"] {
        assert!(!out.stdout.contains(recovery) && !out.stderr.contains(recovery), "{out}");
    }
    assert!(running(&bin.join("postgres"), &data).is_empty(), "postgres outlived up{out}");
}

#[test]
fn nginx_stops_gracefully_on_quit() {
    require("nginx");
    let sb = Sandbox::new();
    let port = free_port();
    let root = sb.path("nginx");
    nginx_conf(&root, port);
    let r = root.display();
    let dir = sb.path("startup");
    fs::create_dir(&dir).unwrap();
    script(
        &dir,
        "web.sh",
        &format!(
            "#!/bin/sh\n# unitsync: ready=tcp:{port} stop-signal=QUIT stop-timeout=30s\n\
             exec nginx -e stderr -p {r} -c {r}/nginx.conf\n"
        ),
    );
    require("socat");
    let main = format!("printf 'GET / HTTP/1.0\\r\\n\\r\\n' | socat - TCP:127.0.0.1:{port}");
    let out = up(&sb, &dir, &main);
    out.ok().stdout_has("hello");
    // QUIT is nginx's graceful shutdown: it says so, and nothing is killed.
    let all = format!("{}{}", out.stdout, out.stderr);
    assert!(all.contains("signal 3 (SIGQUIT) received"), "{out}");
    assert!(all.contains("gracefully shutting down"), "{out}");
    assert!(!all.contains("killed after") && !all.contains("SIGKILL"), "{out}");
    assert!(!root.join("nginx.pid").exists(), "nginx left its pid file: not a clean exit{out}");
}

#[test]
fn redis_ready_by_tcp_saves_its_rdb_when_stopped() {
    require("redis-server");
    require("redis-cli");
    let sb = Sandbox::new();
    let port = free_port();
    let data = sb.path("redis");
    fs::create_dir(&data).unwrap();
    let dir = sb.path("startup");
    fs::create_dir(&dir).unwrap();
    script(
        &dir,
        "cache.sh",
        &format!(
            "#!/bin/sh\n# unitsync: ready=tcp:{port} stop-timeout=30s\n\
             exec redis-server --port {port} --bind 127.0.0.1 --dir {} --dbfilename dump.rdb \
             --save '3600 1' --appendonly no --daemonize no\n",
            data.display()
        ),
    );
    let out = up(&sb, &dir, &format!("redis-cli -p {port} set greeting hello"));
    out.ok().stdout_has("OK");
    let all = format!("{}{}", out.stdout, out.stderr);
    assert!(all.contains("DB saved on disk"), "{out}");
    assert!(!all.contains("killed after") && !all.contains("SIGKILL"), "{out}");
    let rdb = fs::read(data.join("dump.rdb")).unwrap_or_else(|e| panic!("no dump.rdb: {e}{out}"));
    assert!(rdb.starts_with(b"REDIS"), "dump.rdb is no RDB file");
    assert!(rdb.windows(5).any(|w| w == b"hello"), "dump.rdb lacks the key set before the stop");
}

#[test]
fn postgres_and_nginx_supervised_in_one_up_with_a_migration_and_a_health_check() {
    // PostgreSQL as the postgres user by `user=` (no setpriv in the
    // script), stopped by INT, ready by pg_isready; a migration after it;
    // nginx ready by `http://`, health-checked by `http://`, restarted when
    // its health endpoint turns 500; CMD uses both, then sees the restart.
    require("nginx");
    require("socat");
    let sb = Sandbox::new();
    let Cluster { bin, data, sock, .. } = cluster(&sb);
    let (pg_port, web_port) = (free_port(), free_port());
    let root = sb.path("nginx");
    nginx_conf(&root, web_port);
    let r = root.display();
    let dir = sb.path("startup");
    fs::create_dir(&dir).unwrap();
    let isready =
        format!("{} -q -h {} -p {pg_port}", bin.join("pg_isready").display(), sock.display());
    script(
        &dir,
        "db.sh",
        &format!(
            "#!/bin/sh\n\
             # unitsync: user=postgres ready=\"exec:{isready}\" ready-timeout=60s\n\
             # unitsync: stop-signal=INT stop-timeout=30s\n\
             exec {} -D {} -k {} -p {pg_port} -c listen_addresses=\n",
            bin.join("postgres").display(),
            data.display(),
            sock.display()
        ),
    );
    let psql = format!(
        "{} -X -q -h {} -p {pg_port} -U postgres",
        bin.join("psql").display(),
        sock.display()
    );
    script(
        &dir,
        "migrate.sh",
        &format!(
            "#!/bin/sh\n# unitsync: after=db\nset -e\n{psql} -c 'create table visits (at timestamptz)'\n"
        ),
    );
    let url = format!("http://127.0.0.1:{web_port}");
    script(
        &dir,
        "web.sh",
        &format!(
            "#!/bin/sh\n\
             # unitsync: ready={url}/ health={url}/healthz health-interval=300ms\n\
             # unitsync: health-failures=2 restart=on-failure:3 stop-signal=QUIT\n\
             exec nginx -e stderr -p {r} -c {r}/nginx.conf\n"
        ),
    );
    let get = format!("printf 'GET / HTTP/1.0\\r\\n\\r\\n' | socat - TCP:127.0.0.1:{web_port}");
    let restarts = format!("{BIN} status web --json | grep -q '\"restarts\": [1-9]'");
    let ready = format!("{BIN} wait web --once");
    let main = format!(
        "set -e\n\
         {psql} -c 'insert into visits values (now())'\n\
         {get}\n\
         touch {r}/unhealthy\n\
         until {restarts}; do sleep 0.05; done\n\
         rm {r}/unhealthy\n\
         until {ready}; do sleep 0.05; done\n\
         {get}\n\
         echo visits: $({psql} -tA -c 'select count(*) from visits')\n"
    );
    let out = up(&sb, &dir, &main);
    out.ok().stdout_has("visits: 1");
    assert_eq!(out.stdout.matches("hello").count(), 2, "{out}");
    out.stderr_has("web restarting (restart 1, ran ")
        .stderr_has(&format!("2 health checks in a row failed ({url}/healthz)"));
    out.stdout_has("migrate.sh").stdout_has("db.sh");
    // Both stopped their own way, nothing killed, PostgreSQL clean.
    assert!(!out.stdout.contains("killed after") && !out.stderr.contains("SIGKILL"), "{out}");
    assert!(running(&bin.join("postgres"), &data).is_empty(), "postgres outlived up{out}");
    assert!(!root.join("nginx.pid").exists(), "nginx left its pid file: not a clean exit{out}");
    let control = Command::new(bin.join("pg_controldata")).arg(&data).output().unwrap();
    let control = String::from_utf8_lossy(&control.stdout);
    assert!(
        control.contains("Database cluster state:               shut down\n"),
        "{control}{out}"
    );
}
