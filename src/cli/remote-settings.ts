/**
 * The network settings of a remote on the command line (`cairn remote create|update`), mapped to
 * the API's fields (src/api/named-groups.ts, RemoteSettingsFields). Certificates and keys are read
 * from files; the password from an environment variable or stdin, never from an argument (the
 * process list and shell history show arguments). Everything is read and checked before a request
 * is sent, so bad input sends nothing. The server checks the values further (PEM parses, the key
 * matches the certificate, header names) and its refusal is printed as it says.
 */
import * as Options from "@effect/cli/Options"
import { X509Certificate } from "node:crypto"
import { Effect, Option } from "effect"
import { CliError, parseDuration, readText } from "./common.js"

const usage = (message: string) => new CliError({ message, exitCode: 2 })

/** Every setting `--clear` takes, by its option's name, and the API field it sets to null. */
const CLEARABLE = {
  "proxy-url": "proxy_url",
  "ca-cert": "ca_cert",
  "client-cert": "client_cert",
  "client-key": "client_key",
  username: "username",
  password: "password",
  header: "headers",
  "connect-timeout": "connect_timeout_ms",
  "total-timeout": "total_timeout_ms",
  "max-retries": "max_retries",
  "rate-limit": "rate_limit"
} as const
type Clearable = keyof typeof CLEARABLE

const text = (name: string, pseudo: string, description: string) =>
  Options.text(name).pipe(Options.withPseudoName(pseudo), Options.withDescription(description), Options.optional)

export const remoteSettingsOptions = {
  proxyUrl: text(
    "proxy-url",
    "URL",
    "HTTP proxy for every request: http://host:port (https:// too). For a proxy that needs credentials use --proxy-url-env."
  ),
  proxyUrlEnv: text("proxy-url-env", "VAR", "Name of an environment variable holding the proxy URL, credentials included (http://user:password@host:port)."),
  caCert: text("ca-cert", "FILE", "PEM file of the certificates to trust for the remote's TLS connections instead of the system's roots."),
  clientCert: text("client-cert", "FILE", "PEM file of the client certificate (chain, own certificate first) presented to the upstream; needs --client-key."),
  clientKey: text("client-key", "FILE", "PEM file of the client certificate's private key (unencrypted)."),
  username: text("username", "NAME", "Basic auth user name, sent to the remote URL's origin only."),
  passwordEnv: text("password-env", "VAR", "Name of an environment variable holding the basic auth password."),
  passwordStdin: Options.boolean("password-stdin").pipe(Options.withDescription("Read the basic auth password from stdin (one line).")),
  header: Options.text("header").pipe(
    Options.withPseudoName("\"NAME: VALUE\""),
    Options.repeated,
    Options.withDescription("An extra request header \"Name: value\", sent to the remote URL's origin only; repeat for more. On update the headers given replace all of them.")
  ),
  connectTimeout: text("connect-timeout", "DURATION", "Time to open a connection (5s, 500ms, 1m); default: CAIRN_DOWNLOAD_TIMEOUT_MS."),
  totalTimeout: text("total-timeout", "DURATION", "Longest time for one request, to its last byte (10m, 1h30m); default: none."),
  maxRetries: Options.integer("max-retries").pipe(
    Options.withDescription("Retries of a request that failed in a way worth retrying (0..20); default: CAIRN_DOWNLOAD_RETRIES."),
    Options.optional
  ),
  rateLimit: Options.float("rate-limit").pipe(
    Options.withDescription("Requests per second to this remote across the whole cluster (e.g. 20, 0.5); default: none."),
    Options.optional
  )
}

export const clearOption = Options.choice("clear", Object.keys(CLEARABLE) as Array<Clearable>).pipe(
  Options.repeated,
  Options.withDescription("Unset a setting (back to its default); repeat for more. --clear header removes every extra header.")
)

export interface RemoteSettingsInput {
  readonly proxyUrl: Option.Option<string>
  readonly proxyUrlEnv: Option.Option<string>
  readonly caCert: Option.Option<string>
  readonly clientCert: Option.Option<string>
  readonly clientKey: Option.Option<string>
  readonly username: Option.Option<string>
  readonly passwordEnv: Option.Option<string>
  readonly passwordStdin: boolean
  readonly header: ReadonlyArray<string>
  readonly connectTimeout: Option.Option<string>
  readonly totalTimeout: Option.Option<string>
  readonly maxRetries: Option.Option<number>
  readonly rateLimit: Option.Option<number>
}

const fromEnv = (variable: string, option: string) => {
  const v = process.env[variable]
  return v === undefined || v === ""
    ? Effect.fail(usage(`${option} ${variable}: the environment variable ${variable} is not set`))
    : Effect.succeed(v)
}

/**
 * "Name: value" to a header; the value may contain colons. An error names the header by its
 * position and shows at most its name: the value is usually a credential.
 */
const parseHeader = (raw: string, n: number) => {
  const i = raw.indexOf(":")
  const name = i < 0 ? "" : raw.slice(0, i).trim()
  if (i < 0) return Effect.fail(usage(`--header number ${n} has no colon: give it as "Name: value"`))
  return name === "" || /\s/.test(name)
    ? Effect.fail(usage(`--header number ${n} must be "Name: value", with a header name before the colon, not ${JSON.stringify(name.slice(0, 60))}`))
    : Effect.succeed([name, raw.slice(i + 1).trim()] as const)
}

const milliseconds = (raw: string, option: string) => Effect.map(parseDuration(raw, option), (s) => Math.round(s * 1000))

/**
 * The API fields the options give (only those given), the files and variables read; plus, on
 * update, the settings `--clear` sets to null. A setting both given and cleared is a usage error.
 */
export const remoteSettings = (o: RemoteSettingsInput, clear: ReadonlyArray<Clearable> = []) =>
  Effect.gen(function*() {
    if (Option.isSome(o.proxyUrl) && Option.isSome(o.proxyUrlEnv)) return yield* usage("give --proxy-url or --proxy-url-env, not both")
    if (Option.isSome(o.passwordEnv) && o.passwordStdin) return yield* usage("give --password-env or --password-stdin, not both")
    if (Option.isSome(o.proxyUrl) && /^[a-z][a-z0-9+.-]*:\/\/[^/@]*@/i.test(o.proxyUrl.value)) {
      return yield* usage("--proxy-url must not carry credentials (the process list shows them): put the URL in a variable and give --proxy-url-env")
    }
    const file = (f: Option.Option<string>, option: string) =>
      Option.isSome(f) ? Effect.map(readText(f.value, `${option} ${f.value}`), Option.some) : Effect.succeed(Option.none<string>())
    const fields: Record<string, unknown> = {}
    const set = (field: string, v: Option.Option<unknown>) => Option.isSome(v) && (fields[field] = v.value)
    set("proxy_url", Option.isSome(o.proxyUrlEnv) ? Option.some(yield* fromEnv(o.proxyUrlEnv.value, "--proxy-url-env")) : o.proxyUrl)
    set("ca_cert", yield* file(o.caCert, "--ca-cert"))
    set("client_cert", yield* file(o.clientCert, "--client-cert"))
    set("client_key", yield* file(o.clientKey, "--client-key"))
    set("username", o.username)
    if (Option.isSome(o.passwordEnv)) fields.password = yield* fromEnv(o.passwordEnv.value, "--password-env")
    if (o.passwordStdin) {
      const password = (yield* readText("-", "the password from stdin")).replace(/\r?\n$/, "")
      if (password === "") return yield* usage("--password-stdin: stdin is empty")
      fields.password = password
    }
    if (o.header.length > 0) {
      const headers: Record<string, string> = {}
      for (const [i, raw] of o.header.entries()) {
        const [name, value] = yield* parseHeader(raw, i + 1)
        headers[name] = value
      }
      fields.headers = headers
    }
    if (Option.isSome(o.connectTimeout)) fields.connect_timeout_ms = yield* milliseconds(o.connectTimeout.value, "--connect-timeout")
    if (Option.isSome(o.totalTimeout)) fields.total_timeout_ms = yield* milliseconds(o.totalTimeout.value, "--total-timeout")
    set("max_retries", o.maxRetries)
    set("rate_limit", o.rateLimit)
    for (const name of clear) {
      const field = CLEARABLE[name]
      if (field in fields) return yield* usage(`--clear ${name} and a new ${name} cannot be given together`)
      fields[field] = null
    }
    return fields
  })

/** PEM text as one line: how many certificates, and the first one's subject and expiry. */
const certificates = (pem: string) => {
  const blocks = pem.match(/-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g) ?? []
  try {
    const first = new X509Certificate(blocks[0]!)
    const more = blocks.length > 1 ? ` (+${blocks.length - 1} more)` : ""
    return `${first.subject.replace(/\n/g, ", ")}, expires ${new Date(first.validTo).toISOString().slice(0, 10)}${more}`
  } catch {
    return `${blocks.length} certificate(s), ${pem.length} characters`
  }
}

/** A remote's view for `remote show`: certificates summarized, header names listed, the rest as is. */
export const remoteShown = (view: object): object => {
  const v = view as Record<string, unknown>
  return {
    ...v,
    ...(typeof v.ca_cert === "string" ? { ca_cert: certificates(v.ca_cert) } : {}),
    ...(typeof v.client_cert === "string" ? { client_cert: certificates(v.client_cert) } : {}),
    ...(Array.isArray(v.header_names) ? { header_names: v.header_names.length === 0 ? null : v.header_names.join(", ") } : {})
  }
}
