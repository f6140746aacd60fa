/**
 * A small network of Linux network namespaces, one per host, for cluster tests (test/cluster):
 * each host gets its own namespace, a veth pair and an address on a *backend* bridge; hosts that
 * serve clients get a second veth on a *frontend* bridge. The namespace we run in (the "root" side)
 * has an address on both bridges, so a test can talk to every host as a client and look at the
 * database as an operator.
 *
 *   cut(host)          the host's backend link goes down (the root-side end of its veth): a cable
 *                      pulled out. Its processes live on; packets are lost silently, so TCP peers
 *                      notice only through timeouts, keepalives and their own checks.
 *   restore(host)      the link comes back; TCP connections that nobody gave up on carry on.
 *   block(a, b)        only a and b stop reaching each other (each sends the other's packets to a
 *                      hardware address that no host has), everything else still flows; unblock
 *                      undoes it.
 *
 * Every name starts with a per-run prefix, `crn<our pid in base 36>`, so that two runs never touch
 * each other's namespaces, and a later run recognises the leftovers of a run that crashed (its pid
 * is gone) and deletes them (`removeLeftovers`). Needs root and iproute2; `preflight` says which is
 * missing instead of letting a test skip.
 */
import { execFile } from "node:child_process"
import * as fs from "node:fs"
import { promisify } from "node:util"

const execFileP = promisify(execFile)

const ip = async (...args: Array<string>) => {
  try {
    return (await execFileP("ip", args)).stdout
  } catch (e) {
    const err = e as { stderr?: string; message: string }
    throw new Error(`ip ${args.join(" ")}: ${(err.stderr ?? err.message).trim()}`)
  }
}

const PREFIX_TAG = "crn"

/** A locally administered hardware address that no interface of a test network has. */
const NOWHERE = "02:00:00:00:00:01"

/** Throws with a sentence saying why this machine cannot run namespace tests. */
export const preflight = async () => {
  if (process.platform !== "linux") throw new Error(`cluster tests need Linux network namespaces; this is ${process.platform}`)
  if (process.getuid?.() !== 0) throw new Error("cluster tests need root (they create network namespaces, veth pairs and bridges); run them as root, as CI does")
  try {
    await execFileP("ip", ["-V"])
  } catch {
    throw new Error("cluster tests need the `ip` command (iproute2): apt-get install -y iproute2")
  }
  const probe = `${PREFIX_TAG}${process.pid.toString(36)}-probe`
  try {
    await ip("netns", "add", probe)
  } catch (e) {
    throw new Error(`cannot create a network namespace on this machine: ${(e as Error).message}`)
  } finally {
    await ip("netns", "del", probe).catch(() => undefined)
  }
}

const pidAlive = (pid: number) => {
  try {
    process.kill(pid, 0)
    return true
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === "EPERM"
  }
}

/** The pid encoded in a name made by this module, if it is one. */
const ownerPid = (name: string): number | undefined => {
  const m = new RegExp(`^${PREFIX_TAG}([0-9a-z]{1,6})(?:-|bk$|fr$|[a-z0-9]{2}[01f]$)`).exec(name)
  return m ? parseInt(m[1]!, 36) : undefined
}

/** Kills what still runs in `ns` (processes a crashed run left there), then deletes it. */
const deleteNamespace = async (ns: string) => {
  const pids = (await ip("netns", "pids", ns).catch(() => "")).split(/\s+/).filter((s) => s !== "").map(Number)
  for (const pid of pids) {
    try {
      process.kill(pid, "SIGKILL")
    } catch {
      // gone already
    }
  }
  await ip("netns", "del", ns).catch(() => undefined)
}

/**
 * Deletes namespaces, bridges and veths of earlier runs whose process is gone (a crash or a
 * SIGKILL left them), with anything still running inside those namespaces.
 */
export const removeLeftovers = async () => {
  const namespaces = (await ip("netns", "list")).split("\n").map((l) => l.split(" ")[0]!).filter((n) => n !== "")
  for (const ns of namespaces) {
    const pid = ownerPid(ns)
    if (pid !== undefined && pid !== process.pid && !pidAlive(pid)) await deleteNamespace(ns)
  }
  const links = (await ip("-o", "link", "show")).split("\n").map((l) => /^\d+: ([^:@]+)/.exec(l)?.[1]).filter((n): n is string => n !== undefined)
  for (const link of links) {
    const pid = ownerPid(link)
    if (pid !== undefined && pid !== process.pid && !pidAlive(pid)) await ip("link", "del", link).catch(() => undefined)
  }
}

export interface HostSpec {
  /** Two lower-case letters or digits: it becomes part of interface names (15 characters at most). */
  readonly name: string
  /** Also on the frontend bridge (hosts that clients talk to). */
  readonly frontend?: boolean
}

export interface Host {
  readonly name: string
  readonly ns: string
  /** Its address on the backend network. */
  readonly addr: string
  /** Its address on the frontend network, if it has one. */
  readonly frontAddr?: string
  /** `[ip, netns, exec, ns]`: prefix a command with it to run it on this host. */
  readonly exec: ReadonlyArray<string>
}

export interface Network {
  readonly prefix: string
  readonly hosts: ReadonlyMap<string, Host>
  readonly host: (name: string) => Host
  /** The backend network, e.g. 10.213.7.0/24, and our own address on it. */
  readonly backendCidr: string
  readonly rootAddr: string
  /** Pull the host's backend cable (its processes live on). */
  readonly cut: (name: string) => Promise<void>
  readonly restore: (name: string) => Promise<void>
  /** a and b no longer reach each other (silently: their packets go nowhere); the rest of the network is untouched. */
  readonly block: (a: string, b: string) => Promise<void>
  readonly unblock: (a: string, b: string) => Promise<void>
  /** Commands run in a host's namespace (`ss`, `ip` ...): stdout. */
  readonly run: (name: string, cmd: string, args: ReadonlyArray<string>) => Promise<string>
  /** Kills whatever still runs in the namespaces, deletes them, the veths and the bridges. Idempotent. */
  readonly destroy: () => Promise<void>
}

/** Two /24s (backend, frontend) that no interface of this machine uses, chosen from our pid. */
const pickSubnets = async (): Promise<[string, string]> => {
  const used = await ip("-o", "-4", "addr", "show")
  for (let i = 0; i < 200; i++) {
    const a = 100 + ((process.pid + i * 7) % 150)
    const b = (process.pid >> 3) % 250
    const back = `10.${a}.${b}`
    const front = `10.${a}.${b + 1}`
    if (!used.includes(` ${back}.`) && !used.includes(` ${front}.`)) return [back, front]
  }
  throw new Error("no free 10.x.y.0/24 pair for the test network")
}

export const createNetwork = async (specs: ReadonlyArray<HostSpec>): Promise<Network> => {
  await preflight()
  await removeLeftovers()
  const prefix = `${PREFIX_TAG}${process.pid.toString(36)}`
  const [back, front] = await pickSubnets()
  const brBack = `${prefix}bk`
  const brFront = `${prefix}fr`
  const hosts = new Map<string, Host>()
  const created = { namespaces: [] as Array<string>, links: [] as Array<string> }

  const destroy = async () => {
    for (const ns of created.namespaces.splice(0)) await deleteNamespace(ns)
    // Deleting a namespace deletes the veth ends inside it and so their peers; bridges remain.
    for (const link of created.links.splice(0).reverse()) await ip("link", "del", link).catch(() => undefined)
  }

  try {
    for (const [br, net] of [[brBack, back], [brFront, front]] as const) {
      await ip("link", "add", br, "type", "bridge")
      created.links.push(br)
      await ip("addr", "add", `${net}.1/24`, "dev", br)
      await ip("link", "set", br, "up")
    }
    let n = 1
    for (const spec of specs) {
      if (!/^[a-z0-9]{2}$/.test(spec.name)) throw new Error(`host name ${spec.name}: two lower-case letters or digits`)
      n += 1
      const ns = `${prefix}-${spec.name}`
      await ip("netns", "add", ns)
      created.namespaces.push(ns)
      await ip("-n", ns, "link", "set", "lo", "up")
      const plug = async (br: string, net: string, side: "0" | "f", dev: string) => {
        const outer = `${prefix}${spec.name}${side}`
        const inner = `${prefix}${spec.name}i`
        await ip("link", "add", outer, "type", "veth", "peer", "name", inner)
        created.links.push(outer)
        await ip("link", "set", inner, "netns", ns)
        await ip("-n", ns, "link", "set", inner, "name", dev)
        await ip("-n", ns, "addr", "add", `${net}.${n}/24`, "dev", dev)
        await ip("-n", ns, "link", "set", dev, "up")
        await ip("link", "set", outer, "master", br, "up")
        return `${net}.${n}`
      }
      const addr = await plug(brBack, back, "0", "eth0")
      const frontAddr = spec.frontend ? await plug(brFront, front, "f", "eth1") : undefined
      hosts.set(spec.name, { name: spec.name, ns, addr, ...(frontAddr ? { frontAddr } : {}), exec: ["ip", "netns", "exec", ns] })
    }
  } catch (e) {
    await destroy()
    throw e
  }

  const host = (name: string) => {
    const h = hosts.get(name)
    if (h === undefined) throw new Error(`no host ${name} in this network`)
    return h
  }
  return {
    prefix,
    hosts,
    host,
    backendCidr: `${back}.0/24`,
    rootAddr: `${back}.1`,
    cut: async (name) => void (await ip("link", "set", `${prefix}${host(name).name}0`, "down")),
    restore: async (name) => void (await ip("link", "set", `${prefix}${host(name).name}0`, "up")),
    block: async (a, b) => {
      for (const [from, to] of [[host(a), host(b)], [host(b), host(a)]] as const) {
        await ip("-n", from.ns, "neigh", "replace", to.addr, "lladdr", NOWHERE, "dev", "eth0", "nud", "permanent")
      }
    },
    unblock: async (a, b) => {
      for (const [from, to] of [[host(a), host(b)], [host(b), host(a)]] as const) {
        await ip("-n", from.ns, "neigh", "del", to.addr, "dev", "eth0").catch(() => undefined)
      }
    },
    run: async (name, cmd, args) => (await execFileP("ip", ["netns", "exec", host(name).ns, cmd, ...args])).stdout,
    destroy
  }
}

/** True while a namespace of this run exists (for tests of the clean-up itself). */
export const namespaceExists = (ns: string) => fs.existsSync(`/run/netns/${ns}`)
