// One HTTP request/response on uWebSockets.js, with the library's rules kept in one place: the abort
// handler is attached before anything asynchronous, nothing is written to an aborted or finished
// response, writes are corked, body chunks are copied (uWS reuses them) and capped at maxBodyBytes.

import type { HttpRequest, HttpResponse, us_socket_context_t } from "uWebSockets.js";
import type { Logger } from "../log.js";
import { bodyFormat, CONTENT_TYPE, encodeBody, type BodyFormat } from "./codec.js";
import { errorBody, STATUS_OF_CODE, statusLine, toWireError, type WireError } from "./errors.js";
import type { RouteLabel, ServerMetrics } from "./metrics.js";

/** Counts unfinished work (requests, unsent stream answers) so close() can wait for it. */
export class WorkTracker {
  private pending = 0;
  private waiters: (() => void)[] = [];

  begin(): void {
    this.pending++;
  }

  end(): void {
    this.pending--;
    if (this.pending === 0) for (const wake of this.waiters.splice(0)) wake();
  }

  idle(): Promise<void> {
    if (this.pending === 0) return Promise.resolve();
    return new Promise((resolve) => this.waiters.push(resolve));
  }
}

export interface ServerContext {
  metrics: ServerMetrics;
  logger: Logger;
  maxBodyBytes: number;
  work: WorkTracker;
  /** After close() starts: requests are refused and connections closed after their answer. */
  closing: boolean;
}

type Headers = Readonly<Record<string, string>>;

/** Seconds a client is told to wait before retrying a 429 or 503 pick: about one scrape-and-refresh cycle, rounded up. */
const RETRY_AFTER_S = "1";

export class Exchange {
  private aborted = false;
  private done = false;
  private tracked = true;

  /** Call from the route handler itself, before it returns: uWS requires the abort handler by then. */
  constructor(
    private readonly res: HttpResponse,
    readonly route: RouteLabel,
    private readonly ctx: ServerContext,
    /** A HEAD response carries no body. */
    private readonly head = false,
  ) {
    ctx.work.begin();
    res.onAborted(() => {
      this.aborted = true;
      this.finish();
    });
  }

  /** Still owed an answer and able to take one. */
  get open(): boolean {
    return !this.aborted && !this.done;
  }

  send(status: number, body: string | Uint8Array, contentType: string, headers: Headers = {}, closeConnection = false): void {
    if (!this.open) return;
    this.done = true;
    const close = closeConnection || this.ctx.closing;
    this.res.cork(() => {
      this.res.writeStatus(statusLine(status));
      if (!this.head) this.res.writeHeader("content-type", contentType);
      // A shed or unavailable answer may be retried: say when (RFC 9110 §10.2.3).
      if ((status === 429 || status === 503) && headers["retry-after"] === undefined) this.res.writeHeader("retry-after", RETRY_AFTER_S);
      for (const name in headers) this.res.writeHeader(name, headers[name]);
      if (this.head) {
        // endWithoutBody with any argument, even undefined, makes this uWS build announce that many
        // bytes (2^63 for undefined), wait for them and drop the connection at the next request.
        if (close) this.res.writeHeader("connection", "close");
        this.res.endWithoutBody();
      } else this.res.end(body, close);
    });
    this.ctx.metrics.requests.slot(this.route, status).n++;
    this.finish();
  }

  sendValue(status: number, value: unknown, format: BodyFormat = "json", headers?: Headers): void {
    if (!this.open) return;
    this.send(status, encodeBody(value, format), CONTENT_TYPE[format], headers);
  }

  sendError(error: WireError, format: BodyFormat = "json", headers?: Headers, closeConnection = false): void {
    if (!this.open) return;
    this.send(STATUS_OF_CODE[error.code], encodeBody(errorBody(error), format), CONTENT_TYPE[format], headers, closeConnection);
  }

  /** Hands the connection to a WebSocket route (101 Switching Protocols); the exchange is over. */
  upgrade<T>(userData: T, req: HttpRequest, context: us_socket_context_t): void {
    if (!this.open) return;
    this.done = true;
    this.res.upgrade(userData, req.getHeader("sec-websocket-key"), req.getHeader("sec-websocket-protocol"), req.getHeader("sec-websocket-extensions"), context);
    this.ctx.metrics.requests.slot(this.route, 101).n++;
    this.finish();
  }

  /**
   * Answers a thrown value: its code's status, or 500 (logged) for anything that is not a HeadroomError;
   * `headersFor` adds headers that carry the error too.
   */
  fail(err: unknown, format: BodyFormat = "json", headersFor?: (wire: WireError) => Headers): void {
    const wire = toWireError(err);
    if (wire.code === "INTERNAL") this.ctx.logger.log("error", "request failed", { route: this.route, error: err instanceof Error ? err.stack : String(err) });
    this.sendError(wire, format, headersFor?.(wire));
  }

  /**
   * Buffers the body, then calls `onBody` with it (a copy the callback may keep) and its format (from
   * content-type). A body over maxBodyBytes is answered 413 as soon as it is known to be too large (from
   * content-length, or the chunk that crosses the limit) and the connection is closed rather than read to
   * the end. A throw or a rejection from `onBody` becomes the error answer, in the request's format.
   */
  readBody(req: HttpRequest, onBody: (body: Buffer, format: BodyFormat) => void | Promise<void>): void {
    const format = bodyFormat(req.getHeader("content-type"));
    const contentLength = req.getHeader("content-length");
    const limit = this.ctx.maxBodyBytes;
    const tooLarge = () =>
      this.sendError({ code: "BODY_TOO_LARGE", message: `body: larger than the limit of ${limit} bytes (server.maxBodyBytes)` }, format, undefined, true);
    if (contentLength !== "" && Number(contentLength) > limit) {
      tooLarge();
      return;
    }
    const chunks: Buffer[] = [];
    let bytes = 0;
    this.res.onData((chunk, isLast) => {
      if (!this.open) return;
      bytes += chunk.byteLength;
      if (bytes > limit) {
        tooLarge();
        return;
      }
      chunks.push(Buffer.from(new Uint8Array(chunk)));
      if (!isLast) return;
      const body = chunks.length === 1 ? chunks[0] : Buffer.concat(chunks, bytes);
      try {
        const pending = onBody(body, format);
        if (pending !== undefined) pending.catch((err: unknown) => this.fail(err, format));
      } catch (err) {
        this.fail(err, format);
      }
    });
  }

  private finish(): void {
    if (!this.tracked) return;
    this.tracked = false;
    this.ctx.work.end();
  }
}
