/**
 * nginx serving a directory, as the reference static file server (bench:content) and as the
 * upstream that syncs download from (bench:sync). Installed with apt-get (Debian package) if
 * missing; configured for static files: sendfile, no access log, long keep-alive.
 */
import { existsSync } from "node:fs"
import * as fs from "node:fs/promises"
import * as os from "node:os"
import * as path from "node:path"
import { freePort } from "../../../src/db/embedded.js"
import { type Proc, runCommand, spawnProc, until } from "../../lib/processes.js"

const CANDIDATES = ["/usr/sbin/nginx", "/usr/bin/nginx", "/usr/local/sbin/nginx", "/usr/local/bin/nginx"]

/** The nginx binary, installed from the Debian package when missing (needs root and apt-get). */
export const ensureNginx = async (log: (s: string) => void = (s) => console.error(s)): Promise<string> => {
  const found = CANDIDATES.find((c) => existsSync(c))
  if (found) return found
  log("nginx is not installed: apt-get install -y nginx-light (Debian package)")
  const env = { DEBIAN_FRONTEND: "noninteractive" }
  await runCommand("apt-get", ["update", "-qq"], { env })
  let r = await runCommand("apt-get", ["install", "-y", "-qq", "--no-install-recommends", "nginx-light"], { env })
  if (r.code !== 0) r = await runCommand("apt-get", ["install", "-y", "-qq", "--no-install-recommends", "nginx"], { env })
  const now = CANDIDATES.find((c) => existsSync(c))
  if (!now) throw new Error(`could not install nginx (apt-get exited ${r.code}):\n${r.stderr.slice(-2000)}`)
  return now
}

export interface Nginx {
  readonly url: string
  readonly proc: Proc
  readonly version: string
  readonly stop: () => Promise<void>
}

export const startNginx = async (root: string, opts: { readonly workers?: number | "auto" } = {}): Promise<Nginx> => {
  const bin = await ensureNginx()
  const prefix = await fs.mkdtemp(path.join(os.tmpdir(), "cairn-bench-nginx-"))
  const port = await freePort()
  const conf = `
daemon off;
master_process on;
user root;
worker_processes ${opts.workers ?? "auto"};
pid ${prefix}/nginx.pid;
error_log ${prefix}/error.log warn;
events { worker_connections 8192; multi_accept on; }
http {
  access_log off;
  sendfile on;
  tcp_nopush on;
  tcp_nodelay on;
  keepalive_timeout 120s;
  keepalive_requests 1000000;
  open_file_cache max=20000 inactive=60s;
  default_type application/octet-stream;
  client_body_temp_path ${prefix}/body;
  proxy_temp_path ${prefix}/proxy;
  fastcgi_temp_path ${prefix}/fastcgi;
  uwsgi_temp_path ${prefix}/uwsgi;
  scgi_temp_path ${prefix}/scgi;
  server {
    listen 127.0.0.1:${port} backlog=4096;
    root ${root};
    location / { try_files $uri =404; }
  }
}
`
  await fs.writeFile(path.join(prefix, "nginx.conf"), conf)
  const version = (await runCommand(bin, ["-v"])).stderr.trim().replace(/^nginx version: /, "")
  const proc = spawnProc("nginx", bin, ["-p", prefix, "-c", path.join(prefix, "nginx.conf")], { group: true })
  const url = `http://127.0.0.1:${port}`
  await until("nginx to answer", async () => {
    if (!proc.alive()) throw new Error(`nginx exited:\n${proc.output()}\n${await fs.readFile(path.join(prefix, "error.log"), "utf8").catch(() => "")}`)
    try {
      const r = await fetch(`${url}/`, { method: "HEAD" })
      return r.status > 0
    } catch {
      return false
    }
  }, 20_000, 100)
  return {
    url,
    proc,
    version,
    stop: async () => {
      await proc.stop(5000)
      await fs.rm(prefix, { recursive: true, force: true })
    }
  }
}
