/**
 * The content app: `GET|HEAD /content/{base_path}/{relative_path}` (a unit, or a file the
 * publication generated: a `PULP_MANIFEST`, an index page), outside `/api/v1` and without auth. `ContentApp` is a plain Node request
 * handler that the listener puts in front of the HttpApi app for the requests `isContentRequest`
 * picks (`src/api/listener.ts`; see `serve.ts` for why); `ContentAppLive` needs Db, Session,
 * ArtifactStorage and CairnConfig.
 */
import { Context, Layer } from "effect"
import type { IncomingMessage } from "node:http"
import { OnDemandLive } from "./on-demand.js"
import { CONTENT_PREFIX } from "./paths.js"
import { RoutingTableLive } from "./routing-table.js"
import { type ContentRequestHandler, makeContentHandler } from "./serve.js"

export class ContentApp extends Context.Tag("cairn/content/ContentApp")<ContentApp, ContentRequestHandler>() {}

export const ContentAppLive = Layer.effect(ContentApp, makeContentHandler).pipe(
  Layer.provide(Layer.merge(RoutingTableLive, OnDemandLive))
)

/** GET and HEAD under `/content/`; anything else (other methods too) is the HttpApi app's, which answers 404. */
export const isContentRequest = (req: IncomingMessage): boolean =>
  (req.method === "GET" || req.method === "HEAD") && req.url !== undefined && req.url.startsWith(CONTENT_PREFIX)
