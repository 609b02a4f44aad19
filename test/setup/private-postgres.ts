/**
 * A Postgres server of a test's own (initdb into a temporary directory, its own port and socket),
 * for faults that would disturb every other test on the shared server: restarting it, killing it.
 * The same binaries as the machine's cluster (/usr/lib/postgresql/<version>/bin); run as the
 * `postgres` user when the tests run as root, as initdb refuses root.
 */
import { execFile, execFileSync } from "node:child_process";
import {
  chownSync,
  existsSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
} from "node:fs";
import { tmpdir, userInfo } from "node:os";
import { join } from "node:path";
import { freePort } from "../fakes/actions-runner.js";

export interface PrivatePostgres {
  url: string;
  /**
   * `pg_ctl restart -m fast`: every connection is cut, the server is back when this resolves.
   * Asynchronous, so that the test's own event loop (the service under test, its clients) keeps
   * running while the server is down.
   */
  restart(): Promise<void>;
  stop(): void;
}

function binDir(): string {
  const root = "/usr/lib/postgresql";
  const versions = readdirSync(root).sort((a, b) => Number(b) - Number(a));
  for (const v of versions)
    if (existsSync(join(root, v, "bin/pg_ctl"))) return join(root, v, "bin");
  throw new Error(`no Postgres binaries under ${root}`);
}

export async function startPrivatePostgres(): Promise<PrivatePostgres> {
  const bin = binDir();
  const dir = mkdtempSync(join(tmpdir(), "reprise-pg-"));
  const data = join(dir, "data");
  const root = userInfo().uid === 0;
  if (root) {
    const pg = statSync("/var/lib/postgresql");
    chownSync(dir, pg.uid, pg.gid);
  }
  const argv = (cmd: string, args: string[]): [string, string[]] =>
    root ? ["runuser", ["-u", "postgres", "--", join(bin, cmd), ...args]] : [join(bin, cmd), args];
  const run = (cmd: string, ...args: string[]) =>
    execFileSync(...argv(cmd, args), { stdio: ["ignore", "pipe", "pipe"], encoding: "utf8" });
  const runAsync = (cmd: string, ...args: string[]) =>
    new Promise<void>((resolve, reject) =>
      execFile(...argv(cmd, args), (e, _out, err) =>
        e ? reject(new Error(`${cmd} failed: ${err || e.message}`)) : resolve(),
      ),
    );
  run("initdb", "-D", data, "-A", "trust", "-U", "postgres", "--no-sync", "-E", "UTF8");
  const ctlArgs = (args: string[]) => [
    "-D",
    data,
    "-l",
    join(dir, "log"),
    "-w",
    "-t",
    "60",
    ...args,
  ];
  const ctl = (...args: string[]) => run("pg_ctl", ...ctlArgs(args));
  // A free port can be taken by another process between freePort() and the server's bind:
  // then start again on another.
  let port = 0;
  let opts = "";
  for (let attempt = 1; ; attempt++) {
    port = await freePort();
    opts = `-p ${port} -k ${dir} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=50`;
    try {
      ctl("-o", opts, "start");
      break;
    } catch (e) {
      if (attempt >= 3) {
        const log = existsSync(join(dir, "log")) ? readFileSync(join(dir, "log"), "utf8") : "";
        throw new Error(`${(e as Error).message}\n${log.slice(-2_000)}`);
      }
    }
  }
  run("createdb", "-h", "127.0.0.1", "-p", String(port), "-U", "postgres", "reprise");
  return {
    url: `postgres://postgres@127.0.0.1:${port}/reprise`,
    restart: () => runAsync("pg_ctl", ...ctlArgs(["-o", opts, "-m", "fast", "restart"])),
    stop: () => {
      try {
        run("pg_ctl", "-D", data, "-w", "-t", "15", "-m", "immediate", "stop");
      } catch {
        // Not stopped in time: end the postmaster (its children follow) rather than hang.
        const pid = Number(readFileSync(join(data, "postmaster.pid"), "utf8").split("\n")[0]);
        if (pid > 0) process.kill(pid, "SIGKILL");
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    },
  };
}
