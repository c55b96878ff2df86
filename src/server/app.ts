// The HTTP and WebSocket front end of SPEC.md §7 on uWebSockets.js: routes decode with ./codec.ts, call
// the engine through EngineApi only, and answer errors through ./errors.ts's one table.

import { createHash, timingSafeEqual } from "node:crypto";
import type { Registry } from "prom-client";
import uws from "uWebSockets.js";
import type { HttpRequest, HttpResponse, TemplatedApp, us_listen_socket, us_socket } from "uWebSockets.js";
import type { ServerConfig } from "../config/schema.js";
import type { EngineApi, PickAnswer, PickInput } from "../engine/types.js";
import { HeadroomError } from "../errors.js";
import type { Logger } from "../log.js";
import {
  bodyFormat,
  CONTENT_TYPE,
  decodeAddressParam,
  decodeBody,
  decodeGatewayPick,
  decodePick,
  decodePods,
  decodeReports,
  decodeRouteLevel,
  encodePickAnswer,
  type SloHeaders,
} from "./codec.js";
import { errorBody, SHUTTING_DOWN, STATUS_OF_CODE, type WireError } from "./errors.js";
import { Exchange, WorkTracker, type ServerContext } from "./exchange.js";
import { elapsedSeconds, serverMetrics, type RouteLabel } from "./metrics.js";
import { createStream } from "./stream.js";

/** How long close() lets requests and unsent stream answers finish before it closes connections anyway. */
export const CLOSE_GRACE_MS = 10_000;

export interface ServerOptions {
  engine: EngineApi;
  registry: Registry;
  config: ServerConfig;
  logger: Logger;
  /**
   * bench:rpc only: serve `POST /bench/fixed`, which reads the whole body and answers this JSON — the
   * trivial handler a pick is measured against on the same server.
   */
  benchFixedResponse?: string;
}

export interface HeadroomServer {
  /** Resolves with the bound port (useful with port 0). */
  listen(host: string, port: number): Promise<number>;
  /** Stops accepting, lets in-flight requests and stream answers finish (at most CLOSE_GRACE_MS), then closes every connection. */
  close(): Promise<void>;
}

/** The address cannot be listened on (in use, or not this host's). */
export class ListenError extends Error {}

type Method = "get" | "post" | "put" | "del";
type Handler = (ex: Exchange, req: HttpRequest) => void;

interface Route {
  pattern: string;
  label: RouteLabel;
  methods: Partial<Record<Method, Handler>>;
}

const ALLOW_NAME: Record<Method, string> = { get: "GET", post: "POST", put: "PUT", del: "DELETE" };
/**
 * Routes still answered after close() begins: liveness stays true while in-flight work finishes,
 * readiness says why it is false, and a last scrape sees the final counts.
 */
const SERVED_WHILE_CLOSING: ReadonlySet<RouteLabel> = new Set(["/healthz", "/readyz", "/metrics"]);
const TEXT = "text/plain; charset=utf-8";

export function createServer(options: ServerOptions): HeadroomServer {
  const { engine, registry, config, logger } = options;
  const ctx: ServerContext = {
    metrics: serverMetrics(registry),
    logger,
    maxBodyBytes: config.maxBodyBytes,
    work: new WorkTracker(),
    closing: false,
  };
  const adminDigest = config.adminToken === undefined ? undefined : sha256(config.adminToken);

  /** True when the request may change pods; otherwise a 401 is already sent. */
  function admitted(ex: Exchange, req: HttpRequest): boolean {
    if (adminDigest === undefined) return true;
    const m = /^bearer\s+(\S+)\s*$/i.exec(req.getHeader("authorization"));
    // Digests have one length, so the comparison takes the same time whatever was sent.
    if (m !== null && timingSafeEqual(sha256(m[1]), adminDigest)) return true;
    const format = bodyFormat(req.getHeader("content-type"));
    ex.sendError({ code: "UNAUTHORIZED", message: "authorization: this endpoint needs 'Bearer <token>', the admin token (server.adminToken or HEADROOM_ADMIN_TOKEN)" }, format, {
      "www-authenticate": 'Bearer realm="headroom"',
    });
    return false;
  }

  function pick(ex: Exchange, req: HttpRequest): void {
    const slo = sloHeaders(req);
    ex.readBody(req, (body, format) => {
      const startedMs = performance.now();
      // A callback, not a promise: the answer is written as the batch ends, without a microtask per pick.
      engine.pickQueued([decodePick(decodeBody(body, format), slo)], ([result]) => {
        try {
          if (undeliverable(ex, result)) return;
          if (result instanceof HeadroomError) ex.sendError(result, format);
          else ex.send(200, encodePickAnswer(result, format), CONTENT_TYPE[format]);
        } catch (err) {
          ex.fail(err, format);
        }
        ctx.metrics.pickSeconds.pick.observe(elapsedSeconds(startedMs));
      });
    });
  }

  function gatewayPick(ex: Exchange, req: HttpRequest): void {
    const startedMs = performance.now();
    const refuse = (err: unknown) => ex.fail(err, "json", gatewayErrorHeaders);
    let input: PickInput;
    try {
      input = decodeGatewayPick({
        ...sloHeaders(req),
        requestId: req.getHeader("x-request-id"),
        promptTokens: req.getHeader("x-prompt-tokens"),
        originalContentLength: req.getHeader("x-original-content-length"),
        priority: req.getHeader("x-headroom-priority"),
      });
    } catch (err) {
      refuse(err);
      return;
    }
    // A body (ext_authz with_request_body) is not read: the pick is made from headers alone.
    engine.pickQueued([input], ([result]) => {
      try {
        if (undeliverable(ex, result)) return;
        if (result instanceof HeadroomError) refuse(result);
        else ex.send(200, "", TEXT, gatewayHeaders(result));
      } catch (err) {
        refuse(err);
      }
      ctx.metrics.pickSeconds.gateway.observe(elapsedSeconds(startedMs));
    });
  }

  /** True when the client went away before its pick was made: the pick's load is released, as no request will follow it. */
  function undeliverable(ex: Exchange, result: PickAnswer | HeadroomError): boolean {
    if (ex.open) return false;
    engine.withdraw([result]);
    return true;
  }

  function route(ex: Exchange, req: HttpRequest): void {
    const headerLevel = req.getHeader("x-slo-level");
    ex.readBody(req, (body, format) => {
      ex.sendValue(200, engine.route(decodeRouteLevel(decodeBody(body, format), headerLevel)), format);
    });
  }

  function report(ex: Exchange, req: HttpRequest): void {
    ex.readBody(req, (body, format) => {
      ex.sendValue(200, engine.report(decodeReports(decodeBody(body, format))), format);
    });
  }

  function putPods(ex: Exchange, req: HttpRequest): void {
    if (!admitted(ex, req)) return;
    ex.readBody(req, (body, format) => {
      const pods = decodePods(decodeBody(body, format));
      engine.upsertPods(pods);
      ex.sendValue(200, { upserted: pods.length }, format);
    });
  }

  function deletePod(ex: Exchange, req: HttpRequest): void {
    if (!admitted(ex, req)) return;
    const address = decodeAddressParam(req.getParameter(0));
    if (!engine.deletePod(address)) throw new HeadroomError("NOT_FOUND", `no pod ${address}`);
    ex.sendValue(200, { deleted: address });
  }

  function metrics(ex: Exchange): void {
    registry.metrics().then(
      (text) => ex.send(200, text, registry.contentType),
      (err: unknown) => ex.fail(err),
    );
  }

  function readyz(ex: Exchange, req: HttpRequest): void {
    const scope = req.getQuery("scope") ?? "";
    if (scope !== "" && scope !== "replica") {
      ex.sendError({ code: "REQUEST_INVALID", message: `scope: must be "replica" or absent, got ${JSON.stringify(scope.slice(0, 60))}` });
      return;
    }
    const readiness = engine.ready(scope === "replica");
    const reasons = ctx.closing ? ["server shutting down", ...readiness.reasons] : readiness.reasons;
    if (reasons.length === 0) {
      ex.sendValue(200, { ready: true, reasons });
      return;
    }
    ex.sendValue(STATUS_OF_CODE.NOT_READY, { ready: false, reasons, ...errorBody({ code: "NOT_READY", message: reasons.join("; ") }) });
  }

  function streamWithoutUpgrade(ex: Exchange): void {
    ex.sendError({ code: "REQUEST_INVALID", message: "GET /v1/stream: needs a WebSocket upgrade" });
  }

  const routes: Route[] = [
    { pattern: "/v1/pick", label: "/v1/pick", methods: { post: pick } },
    { pattern: "/v1/route", label: "/v1/route", methods: { post: route } },
    { pattern: "/v1/report", label: "/v1/report", methods: { post: report } },
    { pattern: "/v1/pods", label: "/v1/pods", methods: { put: putPods } },
    { pattern: "/v1/pods/:address", label: "/v1/pods/{address}", methods: { del: deletePod } },
    { pattern: "/v1/stream", label: "/v1/stream", methods: { get: streamWithoutUpgrade } },
    { pattern: "/metrics", label: "/metrics", methods: { get: metrics } },
    { pattern: "/healthz", label: "/healthz", methods: { get: (ex) => ex.sendValue(200, { status: "ok" }) } },
    { pattern: "/readyz", label: "/readyz", methods: { get: readyz } },
    { pattern: "/v1/state", label: "/v1/state", methods: { get: (ex) => ex.sendValue(200, engine.state()) } },
    { pattern: "/v1/planner", label: "/v1/planner", methods: { get: (ex) => ex.sendValue(200, engine.planner()) } },
  ];
  const fixed = options.benchFixedResponse;
  if (fixed !== undefined) {
    routes.push({
      pattern: "/bench/fixed",
      label: "/bench/fixed",
      methods: { post: (ex, req) => ex.readBody(req, () => ex.send(200, fixed, CONTENT_TYPE.json)) },
    });
  }

  /**
   * Every handler runs behind this: an Exchange before anything else, refusals while closing (but for
   * the probes and /metrics, which say so themselves), throws answered in the request's format.
   */
  const wrap =
    (label: RouteLabel, handler: Handler) =>
    (res: HttpResponse, req: HttpRequest): void => {
      const ex = new Exchange(res, label, ctx, req.getMethod() === "head");
      if (ctx.closing && !SERVED_WHILE_CLOSING.has(label)) {
        if (label === "/v1/gateway/pick") ex.sendError(SHUTTING_DOWN, "json", gatewayErrorHeaders(SHUTTING_DOWN), true);
        else ex.sendError(SHUTTING_DOWN, bodyFormat(req.getHeader("content-type")), undefined, true);
        return;
      }
      try {
        handler(ex, req);
      } catch (err) {
        ex.fail(err, bodyFormat(req.getHeader("content-type")));
      }
    };

  const stream = createStream({ engine, ctx, maxInflightPerConnection: config.maxInflightPerConnection, maxPayloadBytes: config.maxBodyBytes });
  const app: TemplatedApp = uws.App();
  app.ws("/v1/stream", stream.behavior);
  // Any method: Envoy's ext_authz HTTP service forwards the original request's method verbatim.
  for (const pattern of ["/v1/gateway/pick", "/v1/gateway/pick/*"]) app.any(pattern, wrap("/v1/gateway/pick", gatewayPick));
  for (const r of routes) {
    const methods = Object.keys(r.methods) as Method[];
    for (const method of methods) app[method](r.pattern, wrap(r.label, r.methods[method]!));
    // HEAD is GET without the body (probes and load balancers use it).
    if (r.methods.get !== undefined) app.head(r.pattern, wrap(r.label, r.methods.get));
    const allow = [...methods.map((m) => ALLOW_NAME[m]), ...(r.methods.get === undefined ? [] : ["HEAD"])].join(", ");
    // uWS prefers a method's own handler over `any` on the same pattern, so this sees only the others.
    app.any(
      r.pattern,
      wrap(r.label, (ex, req) => {
        const message = `${req.getMethod().toUpperCase()} ${r.label}: allowed ${allow}`;
        ex.sendError({ code: "METHOD_NOT_ALLOWED", message }, bodyFormat(req.getHeader("content-type")), { allow });
      }),
    );
  }
  app.any(
    "/*",
    wrap("unmatched", (ex, req) => ex.sendError({ code: "NOT_FOUND", message: `no endpoint ${req.getUrl()}` }, bodyFormat(req.getHeader("content-type")))),
  );

  let listenSocket: us_listen_socket | null = null;
  let shutdown: Promise<void> | null = null;

  return {
    listen(host, port) {
      return new Promise((resolve, reject) => {
        app.listen(host, port, (socket) => {
          if (socket === false) {
            reject(new ListenError(`cannot listen on ${host}:${port} (in use, or not an address of this host)`));
            return;
          }
          listenSocket = socket;
          const bound = uws.us_socket_local_port(socket as unknown as us_socket);
          logger.log("info", "listening", { host, port: bound });
          resolve(bound);
        });
      });
    },
    close() {
      shutdown ??= (async () => {
        ctx.closing = true;
        if (listenSocket !== null) uws.us_listen_socket_close(listenSocket);
        listenSocket = null;
        let timer: NodeJS.Timeout | undefined;
        const grace = new Promise<void>((resolve) => (timer = setTimeout(resolve, CLOSE_GRACE_MS)));
        await Promise.race([ctx.work.idle().then(stream.drained), grace]);
        clearTimeout(timer);
        stream.closeAll();
        // Not in the shipped typings, but in the native module: closes idle keep-alive connections too.
        (app as TemplatedApp & { close(): void }).close();
      })();
      return shutdown;
    },
  };
}

function sloHeaders(req: HttpRequest): SloHeaders {
  return { level: req.getHeader("x-slo-level"), ttftMs: req.getHeader("x-slo-ttft-ms"), tpotMs: req.getHeader("x-slo-tpot-ms") };
}

/** nginx drops an auth sub-request's body; a gateway pick's refusal survives in headers it can map. */
function gatewayErrorHeaders(wire: WireError): Record<string, string> {
  return { "x-headroom-error-code": wire.code, "x-headroom-error-message": headerSafe(wire.message) };
}

/**
 * An error message as a header value that nginx can also place inside a JSON string (it drops an
 * auth sub-request's body): printable ASCII, double quotes and backslashes made single quotes and
 * slashes, at most 200 characters.
 */
function headerSafe(message: string): string {
  return message
    .replace(/[^\x20-\x7e]/g, "?")
    .replace(/"/g, "'")
    .replace(/\\/g, "/")
    .slice(0, 200);
}

function gatewayHeaders(answer: PickAnswer): Record<string, string> {
  const headers: Record<string, string> = {
    ...answer.headers,
    "x-headroom-pool": answer.pool,
    "x-headroom-request-id": answer.requestId,
    "x-headroom-outcome": answer.outcome,
  };
  if (answer.fallbacks.length > 0) headers["x-headroom-fallback-endpoints"] = answer.fallbacks.join(",");
  // A local prefill names no prefill pod, and Envoy's ext_authz only overwrites the headers an answer
  // carries: without this a client's own x-prefiller-host-port would reach the decode pod. (nginx
  // clears the header itself when the pick sets none.)
  if (headers["x-prefiller-host-port"] === undefined) headers["x-envoy-auth-headers-to-remove"] = "x-prefiller-host-port";
  return headers;
}

function sha256(text: string): Buffer {
  return createHash("sha256").update(text).digest();
}
