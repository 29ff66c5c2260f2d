//! Daemonizing and socket hygiene: the `--log` file, `--detach`, the
//! pidfile, and the socket itself (its directory's owner and mode, a stale
//! socket left by a dead server, and cleaning up after ourselves).

use std::fs;
use std::io::{self, Read, Write};
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, MetadataExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};

use nix::fcntl::{AT_FDCWD, OFlag, RenameFlags, renameat2};
use nix::sys::stat::{Mode, umask};
use nix::unistd::{ForkResult, Gid, chown, fork, pipe2, setsid};

use super::Error;
use crate::peer::Policy;

/// Opens `--log` for appending.
pub(super) fn open_log(path: &Path) -> Result<fs::File, Error> {
    fs::File::options()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|err| Error::LogFile { path: path.to_owned(), err })
}

/// Either side of the fork of `--detach`.
pub(super) enum Detached {
    /// The caller, holding the child's pid and word.
    Parent { child: i32, ready: Ready },
    /// The server to be, which must say whether it serves.
    Child(Report),
}

/// Forks for `--detach`. The child leads a session of its own with its
/// standard streams on /dev/null (stderr on `log`, if given), and reports
/// to the parent through a pipe whether it started serving, so that the
/// parent never says "started" for a server that then gave up, nor fails
/// while a server keeps running. Call it before any thread is started.
pub(super) fn detach(log: Option<&fs::File>) -> Result<Detached, Error> {
    let (read, write) = pipe2(OFlag::O_CLOEXEC).map_err(|e| Error::Detach(e.into()))?;
    // SAFETY: no thread has been started yet, so the child is a full copy.
    match unsafe { fork() }.map_err(|e| Error::Detach(e.into()))? {
        ForkResult::Parent { child } => {
            // Our copy of the write end must go, or the child's death would
            // not end our read.
            drop(write);
            Ok(Detached::Parent { child: child.as_raw(), ready: Ready(fs::File::from(read)) })
        }
        ForkResult::Child => {
            drop(read);
            setsid().map_err(|e| Error::Detach(e.into()))?;
            // Keep none of the caller's streams open, or a caller that
            // reads them (`pid=$(unitsync serve --detach)`) never returns.
            // Logs go to --log, if given.
            let null = fs::File::options().read(true).write(true).open("/dev/null");
            if let Ok(null) = null {
                let _ = nix::unistd::dup2_stdin(&null);
                let _ = nix::unistd::dup2_stdout(&null);
                let _ = nix::unistd::dup2_stderr(log.unwrap_or(&null));
            }
            Ok(Detached::Child(Report(fs::File::from(write))))
        }
    }
}

/// What the parent of `--detach` reads: "ok", or why the child gave up.
const READY: &str = "ok";

/// The parent's end of the pipe of `--detach`.
pub(super) struct Ready(fs::File);

impl Ready {
    /// Waits until the child serves, or fails as it did.
    pub(super) fn wait(mut self) -> Result<(), Error> {
        let mut word = String::new();
        let _ = self.0.read_to_string(&mut word);
        match word.as_str() {
            READY => Ok(()),
            "" => Err(Error::Child("the server exited before it started serving".to_owned())),
            why => Err(Error::Child(why.to_owned())),
        }
    }
}

/// The child's end of the pipe of `--detach`.
pub(super) struct Report(fs::File);

impl Report {
    /// Tells the parent that the child serves (`None`) or why it does not,
    /// and closes the pipe, which ends the parent's wait.
    pub(super) fn send(mut self, failure: Option<&Error>) {
        let word = failure.map_or_else(|| READY.to_owned(), Error::to_string);
        let _ = self.0.write_all(word.as_bytes());
    }
}

/// Writes `pid` to `--pidfile`, if one was asked for.
pub(super) fn write_pidfile(pidfile: Option<&Path>, pid: u32) -> Result<(), Error> {
    match pidfile {
        Some(path) => fs::write(path, format!("{pid}\n"))
            .map_err(|err| Error::Pidfile { path: path.to_owned(), err }),
        None => Ok(()),
    }
}

/// Prepares the socket's directory, clears a stale socket, and listens.
pub(super) fn bind(path: &Path, policy: &Policy) -> Result<UnixListener, Error> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let dir_err = |err| Error::Dir { path: dir.to_owned(), err };
    if !dir.exists() {
        // With --group, members must be able to reach the socket inside.
        let mode = if policy.group.is_some() { 0o710 } else { 0o700 };
        // Only the socket's own directory, never its parents: a mistyped
        // path must not grow a tree of directories (as root, anywhere).
        // Made under a name of its own beside it, then moved into place:
        // a client never sees it before its group and mode are set.
        let temp = beside(dir, "d");
        match fs::DirBuilder::new().mode(mode).create(&temp) {
            Ok(()) => {
                let finish = || -> io::Result<()> {
                    if let Some(gid) = policy.group {
                        chown(&temp, None, Some(Gid::from_raw(gid)))?;
                    }
                    fs::set_permissions(&temp, fs::Permissions::from_mode(mode))?;
                    Ok(put_in_place(&temp, dir)?)
                };
                if let Err(err) = finish() {
                    let _ = fs::remove_dir(&temp);
                    // Another server made it meanwhile: its owner is
                    // checked below.
                    if err.kind() != io::ErrorKind::AlreadyExists {
                        return Err(dir_err(err));
                    }
                }
            }
            Err(err) if err.kind() == io::ErrorKind::NotFound => {
                return Err(Error::NoParent { dir: dir.to_owned() });
            }
            Err(err) => return Err(dir_err(err)),
        }
    }
    let meta = fs::symlink_metadata(dir).map_err(dir_err)?;
    if !meta.is_dir() {
        return Err(dir_err(io::Error::other("not a directory")));
    }
    if meta.uid() != policy.owner && meta.uid() != 0 {
        return Err(Error::DirOwner { path: dir.to_owned(), owner: meta.uid(), me: policy.owner });
    }

    match fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_socket() => {
            if UnixStream::connect(path).is_ok() {
                return Err(Error::AlreadyRunning { path: path.to_owned() });
            }
            // Nothing listens: a server died without cleaning up.
            fs::remove_file(path).map_err(|err| Error::Socket { path: path.to_owned(), err })?;
        }
        Ok(meta) => {
            let what = if meta.is_symlink() {
                "a symbolic link"
            } else if meta.is_dir() {
                "a directory"
            } else {
                "a regular file or device"
            };
            return Err(Error::NotASocket { path: path.to_owned(), what });
        }
        Err(_) => {}
    }

    let mode = if policy.group.is_some() { 0o660 } else { 0o600 };
    let socket_err = |err| Error::Socket { path: path.to_owned(), err };
    // Bound under a name of its own beside it, given its group and mode,
    // then moved into place: a client never finds it half made (a member
    // of --group would be refused by a socket not yet in its group).
    let temp = beside(path, "s");
    if fs::symlink_metadata(&temp).is_ok_and(|m| m.file_type().is_socket()) {
        // A leftover of a server with our pid that died.
        let _ = fs::remove_file(&temp);
    }
    // Created with its final mode, so it is never open to others.
    let old = umask(Mode::from_bits_truncate(0o777 & !mode));
    let bound = UnixListener::bind(&temp);
    umask(old);
    let listener = bound.map_err(socket_err)?;
    let finish = || -> io::Result<()> {
        if let Some(gid) = policy.group {
            chown(&temp, None, Some(Gid::from_raw(gid)))?;
        }
        fs::set_permissions(&temp, fs::Permissions::from_mode(mode))?;
        Ok(put_in_place(&temp, path)?)
    };
    if let Err(err) = finish() {
        let _ = fs::remove_file(&temp);
        return Err(match err.kind() {
            // Another server took the path meanwhile.
            io::ErrorKind::AlreadyExists => Error::AlreadyRunning { path: path.to_owned() },
            _ => socket_err(err),
        });
    }
    Ok(listener)
}

/// A name beside `path` for it to be made under: short (a socket's path
/// has a length limit) and this process's own.
fn beside(path: &Path, kind: &str) -> PathBuf {
    path.with_file_name(format!(".us{kind}{}", std::process::id()))
}

/// Moves `from` to `to`, unless something is at `to` already.
fn put_in_place(from: &Path, to: &Path) -> nix::Result<()> {
    renameat2(AT_FDCWD, from, AT_FDCWD, to, RenameFlags::RENAME_NOREPLACE)
}

/// Removes the socket file at shutdown, unless another server replaced it.
pub(super) fn remove_if_ours(path: &Path) {
    if fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_socket()) {
        if UnixStream::connect(path).is_ok() {
            return;
        }
        let _ = fs::remove_file(path);
    }
}

/// Removes the socket file of a server that gives up before serving. No
/// other server can have replaced it meanwhile (ours listened, so it was
/// live), and a connect test would mislead: after `--detach`'s fork the
/// parent may still hold a copy of the listener for a moment.
pub(super) fn remove_socket(path: &Path) {
    if fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_socket()) {
        let _ = fs::remove_file(path);
    }
}
