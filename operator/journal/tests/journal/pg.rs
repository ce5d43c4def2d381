//! A throwaway PostgreSQL server for the tests: one per test process, started on first use,
//! reachable only through a unix socket in its own temporary directory.
//!
//! The server is run by a small supervisor shell in its own session. The supervisor creates
//! the cluster (`initdb`, or a copy of a template; see [`SUPERVISOR`]), starts the server,
//! waits until `pg_isready` says it accepts connections (bounded by a deadline), reports that
//! on its stdout, and then reads its stdin, whose other end only this test process holds.
//! When the process exits, however it ends (a panic, a nextest timeout that kills the process
//! group, SIGKILL, even during the server's start), the kernel closes that end, and the
//! supervisor stops the server (immediate shutdown: the data is thrown away anyway) and
//! removes the directory. So no server outlives the tests, and nothing holds the
//! test's own stdout or stderr open after it exits.

use std::{
    fs,
    io::{BufRead, BufReader},
    os::unix::fs::MetadataExt,
    path::{Path, PathBuf},
    process::{Child, ChildStdin, Command, Stdio},
    sync::{
        Mutex, OnceLock,
        atomic::{AtomicU32, Ordering},
    },
};

use sqlx::{Connection, PgConnection};

/// Where Debian's `postgresql` package puts each major version's server binaries.
const DEBIAN_BIN_ROOT: &str = "/usr/lib/postgresql";

/// Overrides the directory holding `initdb`, `postgres` and `pg_isready` (for machines
/// without Debian's layout).
const BIN_ENV: &str = "KUBEGRID_TEST_PG_BIN";

/// The supervisor. `$1` is the temporary directory, `$2` the binaries' directory, `$3` the
/// template data directory, and the remaining arguments the prefix that runs a command as the
/// unprivileged server user (nothing when the tests do not run as root; postgres refuses to
/// run as root). The server is the supervisor's own child, so the supervisor also reaps it.
///
/// `initdb` takes 2 to 3 s on a busy 2-core machine, once per test process (nextest runs each
/// test in its own); so the first data directory made for a server user and binaries is kept
/// as a template in the target directory and copied afterwards, which takes under a second
/// (1 MB WAL segments instead of 16 MB keep it at 28 MB). A copy of a data directory that no
/// server runs on is a valid data directory, and a template is only ever published whole
/// (renamed into place), so a concurrent first run cannot see half of one.
const SUPERVISOR: &str = r#"
dir=$1; bin=$2; template=$3; shift 3
# If the test process dies while the server starts, reporting "ready" to it must not kill
# this shell (SIGPIPE) before it has cleaned up.
trap '' PIPE
init() {
    if [ -f "$template/PG_VERSION" ]; then
        cp -a "$template" "$dir/data"
        return
    fi
    "$@" "$bin/initdb" -D "$dir/data" -A trust -U kubegrid -E UTF8 --no-locale --no-sync \
        --no-instructions --wal-segsize=1 || return
    mkdir -p "$(dirname "$template")" &&
        cp -a "$dir/data" "$template.$$" &&
        mv -T "$template.$$" "$template" 2>/dev/null
    rm -rf "$template.$$"
}
if init "$@" >"$dir/setup.log" 2>&1; then
    "$@" "$bin/postgres" -D "$dir/data" -k "$dir" -c listen_addresses= -c fsync=off \
        -c synchronous_commit=off -c full_page_writes=off -c shared_buffers=16MB \
        </dev/null >"$dir/server.log" 2>&1 &
    server=$!
    # Ready when pg_isready says the server accepts connections; failed when the server has
    # exited or the deadline has passed. The pause only paces the polling.
    deadline=$(( $(date +%s) + 60 ))
    until "$bin/pg_isready" -q -h "$dir" -U kubegrid -d postgres; do
        if ! kill -0 "$server" 2>/dev/null || [ "$(date +%s)" -ge "$deadline" ]; then
            break
        fi
        sleep 0.05
    done
fi
if "$bin/pg_isready" -q -h "$dir" -U kubegrid -d postgres 2>/dev/null; then
    echo ready
else
    echo failed
fi
# Returns at end of file: when the test process has exited.
cat >/dev/null
if [ -n "${server:-}" ]; then
    # Immediate shutdown: no checkpoint, since the data is thrown away.
    kill -QUIT "$server" 2>/dev/null
    wait "$server"
fi
rm -rf "$dir"
"#;

/// The running server of this test process.
pub struct Server {
    /// The socket directory (also the data directory's parent).
    dir: PathBuf,
    /// Held for the life of the process; see the module comment.
    _supervisor: Mutex<(Child, ChildStdin)>,
}

static SERVER: OnceLock<Result<Server, String>> = OnceLock::new();
static DATABASES: AtomicU32 = AtomicU32::new(0);

/// The server, started on first use. Panics (failing the test) when it cannot start, with
/// what went wrong and how to fix it.
pub fn server() -> &'static Server {
    match SERVER.get_or_init(Server::start) {
        Ok(server) => server,
        Err(why) => panic!("cannot run the Postgres journal tests: {why}"),
    }
}

impl Server {
    fn start() -> Result<Server, String> {
        let bin = bin_dir()?;
        // Removed on drop until the supervisor, which removes it in the end, is running.
        let tmp = tempfile::Builder::new()
            .prefix("kubegrid-journal-pg-")
            .tempdir()
            .map_err(|err| format!("failed to create a temporary directory: {err}"))?;
        let dir = tmp.path().to_path_buf();
        let (run_as, uid) = run_as(&dir)?;
        // Named for what makes a template usable: the file owner and the binaries (and the
        // version of SUPERVISOR's initdb flags).
        let template = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!(
            "journal-pg-template-v2-uid{uid}{}",
            bin.display().to_string().replace('/', "_")
        ));
        let mut child = Command::new("setsid")
            .arg("sh")
            .arg("-c")
            .arg(SUPERVISOR)
            .arg("sh")
            .arg(&dir)
            .arg(&bin)
            .arg(&template)
            .args(&run_as)
            // The server user may not be able to enter the test's working directory.
            .current_dir(&dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|err| format!("failed to run `setsid sh` to supervise the server: {err}"))?;
        let dir = tmp.keep();
        let stdin = child.stdin.take().expect("piped stdin");
        let stdout = child.stdout.take().expect("piped stdout");
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .map_err(|err| format!("failed to read the supervisor's report: {err}"))?;
        let server = Server {
            dir,
            _supervisor: Mutex::new((child, stdin)),
        };
        if line.trim() != "ready" {
            let logs: String = ["setup.log", "server.log"]
                .iter()
                .map(|name| {
                    let text = fs::read_to_string(server.dir.join(name)).unwrap_or_default();
                    let lines: Vec<&str> = text.lines().collect();
                    let tail = &lines[lines.len().saturating_sub(15)..];
                    format!("--- {name}:\n{}\n", tail.join("\n"))
                })
                .collect();
            return Err(format!(
                "the throwaway server in {} did not start (supervisor said {:?}):\n{logs}",
                server.dir.display(),
                line.trim(),
            ));
        }
        Ok(server)
    }

    /// The URL of `database` on this server, over its unix socket.
    pub fn url(&self, database: &str) -> String {
        format!(
            "postgres://kubegrid@localhost/{database}?host={}",
            self.dir.display()
        )
    }

    /// The socket directory.
    pub fn socket_dir(&self) -> &Path {
        &self.dir
    }

    /// Creates a new, empty database and returns its URL.
    pub async fn database(&self) -> String {
        let name = format!(
            "journal_{}_{}",
            std::process::id(),
            DATABASES.fetch_add(1, Ordering::Relaxed)
        );
        let mut admin = PgConnection::connect(&self.url("postgres"))
            .await
            .expect("connect to the throwaway server's admin database");
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut admin)
            .await
            .expect("create a test database");
        self.url(&name)
    }
}

/// The directory holding `initdb`, `postgres` and `pg_isready`: [`BIN_ENV`], or the newest
/// major version under [`DEBIAN_BIN_ROOT`].
fn bin_dir() -> Result<PathBuf, String> {
    const NEEDED: [&str; 3] = ["initdb", "postgres", "pg_isready"];
    let complete = |bin: &Path| NEEDED.iter().all(|name| bin.join(name).exists());
    let hint = "hint: run .ci/setup as root, which installs Debian's postgresql package";
    if let Some(dir) = std::env::var_os(BIN_ENV) {
        let dir = PathBuf::from(dir);
        if complete(&dir) {
            return Ok(dir);
        }
        return Err(format!(
            "{BIN_ENV}={} lacks one of {NEEDED:?}; {hint}, or point {BIN_ENV} at a directory \
             with the PostgreSQL server binaries",
            dir.display()
        ));
    }
    let newest = fs::read_dir(DEBIAN_BIN_ROOT)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let version: u32 = entry.file_name().to_str()?.parse().ok()?;
            let bin = entry.path().join("bin");
            complete(&bin).then_some((version, bin))
        })
        .max();
    newest.map(|(_, bin)| bin).ok_or_else(|| {
        format!(
            "no PostgreSQL server binaries ({NEEDED:?}) in {DEBIAN_BIN_ROOT}/*/bin and {BIN_ENV} \
             is not set; {hint}"
        )
    })
}

/// The command prefix that runs the server unprivileged, and the uid it runs as. As root,
/// that is `setpriv` to the `postgres` user the package creates (or `nobody`), which is also
/// given `dir`.
fn run_as(dir: &Path) -> Result<(Vec<String>, String), String> {
    let ours = fs::metadata(dir).map_err(|err| format!("{}: {err}", dir.display()))?;
    if ours.uid() != 0 {
        return Ok((Vec::new(), ours.uid().to_string()));
    }
    let user = if id(&["-u", "postgres"]).is_ok() {
        "postgres"
    } else {
        "nobody"
    };
    let uid = id(&["-u", user])?;
    let gid = id(&["-g", user])?;
    let chown = Command::new("chown")
        .arg(format!("{uid}:{gid}"))
        .arg(dir)
        .status()
        .map_err(|err| format!("failed to run chown: {err}"))?;
    if !chown.success() {
        return Err(format!("chown {uid}:{gid} {} failed", dir.display()));
    }
    let prefix = vec![
        "setpriv".into(),
        format!("--reuid={uid}"),
        format!("--regid={gid}"),
        "--clear-groups".into(),
    ];
    Ok((prefix, uid))
}

/// `id ARGS` (a user's uid or gid).
fn id(args: &[&str]) -> Result<String, String> {
    let out = Command::new("id")
        .args(args)
        .output()
        .map_err(|err| format!("failed to run id: {err}"))?;
    if !out.status.success() {
        return Err(format!("id {} failed", args.join(" ")));
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}
