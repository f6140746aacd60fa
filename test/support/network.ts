/**
 * Real network pieces for the remote-settings tests: certificates made with `openssl` (a test CA,
 * a server certificate for 127.0.0.1, a client certificate, and an unrelated CA), and a forward
 * proxy that tunnels CONNECT (https upstreams) and forwards absolute-form requests (http
 * upstreams), optionally requiring basic proxy credentials, and records what it let through.
 */
import { execFileSync } from "node:child_process"
import * as fs from "node:fs"
import * as http from "node:http"
import type { AddressInfo } from "node:net"
import * as os from "node:os"
import * as path from "node:path"
import { createProxy } from "proxy"

export interface Pki {
  /** The CA that issued the server's and the client's certificates. */
  readonly ca: string
  readonly serverCert: string
  readonly serverKey: string
  readonly clientCert: string
  readonly clientKey: string
  /** A CA that issued nothing here (trusting it verifies nothing). */
  readonly otherCa: string
  /** The client's key encrypted with a passphrase (cairn refuses those). */
  readonly encryptedClientKey: string
}

/** Make the certificates in a temporary directory (removed again); EC P-256 keys, valid two days. */
export const makePki = (): Pki => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "cairn-pki-"))
  const at = (f: string) => path.join(dir, f)
  const ssl = (...args: Array<string>) => execFileSync("openssl", args, { cwd: dir, stdio: ["ignore", "pipe", "pipe"] })
  const ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
  try {
    const ca = (name: string) =>
      ssl("req", "-x509", ...ec, "-keyout", at(`${name}.key`), "-out", at(`${name}.crt`), "-days", "2", "-subj", `/CN=cairn test ${name}`)
    ca("ca")
    ca("other")
    const issue = (name: string, ext: string) => {
      ssl("req", ...ec, "-keyout", at(`${name}.key`), "-out", at(`${name}.csr`), "-subj", `/CN=cairn test ${name}`)
      fs.writeFileSync(at(`${name}.ext`), ext)
      ssl("x509", "-req", "-in", at(`${name}.csr`), "-CA", at("ca.crt"), "-CAkey", at("ca.key"), "-CAcreateserial",
        "-out", at(`${name}.crt`), "-days", "2", "-extfile", at(`${name}.ext`))
    }
    issue("server", "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n")
    issue("client", "extendedKeyUsage=clientAuth\n")
    ssl("pkcs8", "-topk8", "-in", at("client.key"), "-out", at("client-enc.key"), "-passout", "pass:secret-passphrase")
    const read = (f: string) => fs.readFileSync(at(f), "utf8")
    return {
      ca: read("ca.crt"),
      serverCert: read("server.crt"),
      serverKey: read("server.key"),
      clientCert: read("client.crt"),
      clientKey: read("client.key"),
      otherCa: read("other.crt"),
      encryptedClientKey: read("client-enc.key")
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true })
  }
}

export interface Proxy {
  /** http://127.0.0.1:<port>/ (without credentials). */
  readonly url: string
  /** CONNECT targets (host:port), one per tunnel opened. */
  readonly tunnels: Array<string>
  /** Absolute URLs of forwarded requests. */
  readonly forwarded: Array<string>
  /** Requests and CONNECTs refused with 407. */
  readonly refused: { count: number }
  readonly close: () => Promise<void>
}

/**
 * Start a forward proxy: the npm package `proxy` (an HTTP proxy on node:http that tunnels CONNECT
 * and forwards absolute-form requests, dropping hop-by-hop headers and adding Via). With
 * `credentials`, everything without that Proxy-Authorization gets its 407.
 */
export const startProxy = async (credentials?: { readonly user: string; readonly password: string }): Promise<Proxy> => {
  const tunnels: Array<string> = []
  const forwarded: Array<string> = []
  const refused = { count: 0 }
  const expected = credentials && `Basic ${Buffer.from(`${credentials.user}:${credentials.password}`).toString("base64")}`
  const server = createProxy(http.createServer())
  // Called for every request and CONNECT before it is served: what the proxy lets through is recorded.
  server.authenticate = (req) => {
    if (expected !== undefined && req.headers["proxy-authorization"] !== expected) {
      refused.count++
      return false
    }
    ;(req.method === "CONNECT" ? tunnels : forwarded).push(req.url ?? "")
    return true
  }
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve))
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/`,
    tunnels,
    forwarded,
    refused,
    close: async () => {
      server.closeAllConnections()
      await new Promise<void>((resolve) => server.close(() => resolve()))
    }
  }
}
