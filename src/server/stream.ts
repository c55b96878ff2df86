// WS /v1/stream: msgpack frames of picks and reports, answered in arrival order on each connection, with
// a bound on unanswered picks (excess items answered OVERLOADED, never dropped) and sends held back
// while the socket's buffer is full, so a slow reader is paced by that bound instead of by memory.

import type { HttpRequest, HttpResponse, us_socket_context_t, WebSocket, WebSocketBehavior } from "uWebSockets.js";
import type { EngineApi, PickAnswers, PickInput } from "../engine/types.js";
import { HeadroomError } from "../errors.js";
import { compactPick, decodeFrame, decodePick, decodeReportItems, encodeMsgpack, NO_SLO_HEADERS, type CompactItem } from "./codec.js";
import { errorBody, SHUTTING_DOWN, toWireError } from "./errors.js";
import { Exchange, type ServerContext } from "./exchange.js";
import { elapsedSeconds } from "./metrics.js";

/** Answers wait in our queue, not uWS's buffer, once this much is buffered for the client. */
const SEND_HIGH_WATER_BYTES = 1024 * 1024;
/**
 * uWS drops a send once more than this is buffered. Sends stop at SEND_HIGH_WATER_BYTES and one answer
 * frame is far smaller than the gap (at most maxInflightPerConnection items, 65,536 at most, each
 * a compact pick or an error), so nothing is ever dropped.
 */
const MAX_BACKPRESSURE_BYTES = 64 * 1024 * 1024;
/** Answers ready but unsent beyond this mean the client writes without reading: it is disconnected. */
const MAX_QUEUED_BYTES = 64 * 1024 * 1024;

/** pickBatch's options for stream picks. */
const NO_FALLBACKS = Object.freeze({ fallbacks: false });

/** A pick's answer while the server is closing. */
const SHUTTING_DOWN_ITEM: CompactItem = Object.freeze({ error: SHUTTING_DOWN });

/** One frame's answer, in the connection's order. */
interface Slot {
  /** null until the frame's picks are back. */
  bytes: Uint8Array | null;
  /** Picks this frame holds against the in-flight bound until its answer is sent. */
  picks: number;
  /** The picks the answer carries: withdrawn if the connection closes before it is sent. */
  results: PickAnswers | null;
}

interface Connection {
  queue: Slot[];
  unansweredPicks: number;
  queuedBytes: number;
  closed: boolean;
}

export interface StreamOptions {
  engine: EngineApi;
  ctx: ServerContext;
  maxInflightPerConnection: number;
  maxPayloadBytes: number;
}

export interface Stream {
  behavior: WebSocketBehavior<Connection>;
  /**
   * Resolves once no connection holds an answer unsent, in the server's queue or in uWebSockets.js's
   * buffer (which closing the app discards): call it once the work is done, before closeAll().
   */
  drained(): Promise<void>;
  /** Closes every connection (1001); answers not yet sent are lost, so call it once drained. */
  closeAll(): void;
}

export function createStream(options: StreamOptions): Stream {
  const { engine, ctx, maxInflightPerConnection } = options;
  const sockets = new Set<WebSocket<Connection>>();

  /** Set while drained() waits: re-checked after drains and closes. */
  let onDrained: (() => void) | null = null;

  /** Run from setImmediate: inside a uWS callback, corked bytes are not yet in the buffered amount. */
  function checkDrained(): void {
    if (onDrained === null) return;
    for (const ws of sockets) if (ws.getUserData().queue.length > 0 || ws.getBufferedAmount() > 0) return;
    const resolve = onDrained;
    onDrained = null;
    resolve();
  }

  const errorFrame = (err: unknown) => encodeMsgpack({ t: "error", ...errorBody(toWireError(err)) });

  function enqueue(conn: Connection, picks: number): Slot {
    const slot: Slot = { bytes: null, picks, results: null };
    conn.queue.push(slot);
    conn.unansweredPicks += picks;
    ctx.work.begin();
    return slot;
  }

  function fill(ws: WebSocket<Connection>, slot: Slot, bytes: Uint8Array): void {
    const conn = ws.getUserData();
    if (conn.closed) return;
    slot.bytes = bytes;
    conn.queuedBytes += bytes.byteLength;
    flush(ws);
  }

  function flush(ws: WebSocket<Connection>): void {
    const conn = ws.getUserData();
    if (conn.closed) return;
    ws.cork(() => {
      while (conn.queue.length > 0 && conn.queue[0].bytes !== null && ws.getBufferedAmount() < SEND_HIGH_WATER_BYTES) {
        const slot = conn.queue.shift()!;
        ws.send(slot.bytes!, true);
        conn.queuedBytes -= slot.bytes!.byteLength;
        conn.unansweredPicks -= slot.picks;
        ctx.work.end();
      }
    });
    if (conn.queuedBytes > MAX_QUEUED_BYTES) ws.end(1008, "answers are not being read");
  }

  function picks(ws: WebSocket<Connection>, conn: Connection, items: unknown[]): void {
    // More could never all be admitted, and each excess item would be answered with an error of its
    // own: a 1 MiB frame of empty items came back as an 88 MB answer frame.
    if (items.length > maxInflightPerConnection) {
      const message = `frame.items: at most ${maxInflightPerConnection} picks a frame (server.maxInflightPerConnection), got ${items.length}`;
      fill(ws, enqueue(conn, 0), errorFrame(new HeadroomError("REQUEST_INVALID", message)));
      return;
    }
    const startedMs = performance.now();
    // While closing, picks are refused as HTTP ones are: a busy stream would otherwise keep owing answers
    // through close()'s grace, and the ones still owed at its end are lost with the connection.
    const admitted = ctx.closing ? 0 : Math.min(items.length, Math.max(0, maxInflightPerConnection - conn.unansweredPicks));
    const answers: CompactItem[] = new Array(items.length);
    const inputs: PickInput[] = [];
    const positions: number[] = [];
    for (let i = 0; i < items.length; i++) {
      if (i >= admitted) {
        answers[i] = ctx.closing ? SHUTTING_DOWN_ITEM : { error: { code: "OVERLOADED", message: `more than ${maxInflightPerConnection} unanswered picks on this connection` } };
        continue;
      }
      try {
        const input = decodePick(items[i], NO_SLO_HEADERS, `items[${i}].`);
        // The oracle would run on the main thread (up to EXPLAIN_MAX_PAIRS pairs an item) for an answer that cannot hold it.
        if (input.explain) throw new HeadroomError("REQUEST_INVALID", `items[${i}].explain: a compact stream answer carries no explanation (POST /v1/pick does)`);
        inputs.push(input);
        positions.push(i);
      } catch (err) {
        answers[i] = { error: toWireError(err) };
      }
    }
    const slot = enqueue(conn, admitted);
    const failed = (err: unknown) => {
      ctx.logger.log("error", "stream picks failed", { error: err instanceof Error ? err.stack : String(err) });
      if (slot.bytes === null) fill(ws, slot, errorFrame(err));
    };
    // Called from a worker's batch too, where a throw would be nobody's to catch.
    const answered = (results: PickAnswers) => {
      try {
        // An answer that will never be sent: no request follows its picks.
        if (conn.closed) {
          engine.withdraw(results);
          return;
        }
        slot.results = results;
        for (let k = 0; k < results.length; k++) answers[positions[k]] = compactPick(results[k]);
        fill(ws, slot, encodeMsgpack({ t: "picked", items: answers }));
        ctx.metrics.pickSeconds.stream.observe(elapsedSeconds(startedMs));
      } catch (err) {
        failed(err);
      }
    };
    // A frame is a batch already. Answered before pickBatch returns when it runs inline, its answer
    // goes out with the loop turn's other writes (uWS corks the socket around this callback). A
    // compact item names no fallbacks, so none are ranked.
    try {
      engine.pickBatch(inputs, answered, NO_FALLBACKS);
    } catch (err) {
      failed(err);
    }
  }

  function reports(ws: WebSocket<Connection>, conn: Connection, items: unknown[]): void {
    const slot = enqueue(conn, 0);
    let bytes: Uint8Array;
    try {
      const { known, unknown } = engine.report(decodeReportItems(items));
      bytes = encodeMsgpack({ t: "reported", known, unknown });
    } catch (err) {
      bytes = errorFrame(err);
    }
    fill(ws, slot, bytes);
  }

  const behavior: WebSocketBehavior<Connection> = {
    maxPayloadLength: options.maxPayloadBytes,
    maxBackpressure: MAX_BACKPRESSURE_BYTES,
    closeOnBackpressureLimit: 0,
    upgrade(res: HttpResponse, req: HttpRequest, context: us_socket_context_t) {
      const ex = new Exchange(res, "/v1/stream", ctx);
      if (ctx.closing) {
        ex.sendError(SHUTTING_DOWN);
        return;
      }
      ex.upgrade<Connection>({ queue: [], unansweredPicks: 0, queuedBytes: 0, closed: false }, req, context);
    },
    open(ws) {
      sockets.add(ws);
    },
    // Decoded before returning: uWS neuters `message` afterwards.
    message(ws, message, isBinary) {
      const conn = ws.getUserData();
      if (!isBinary) {
        fill(ws, enqueue(conn, 0), errorFrame(new HeadroomError("REQUEST_INVALID", "frame: must be a binary msgpack frame, got text")));
        return;
      }
      let frame;
      try {
        frame = decodeFrame(new Uint8Array(message));
      } catch (err) {
        fill(ws, enqueue(conn, 0), errorFrame(err));
        return;
      }
      if (frame.t === "pick") picks(ws, conn, frame.items);
      else reports(ws, conn, frame.items);
    },
    drain(ws) {
      flush(ws);
      if (onDrained !== null) setImmediate(checkDrained);
    },
    close(ws) {
      const conn = ws.getUserData();
      conn.closed = true;
      sockets.delete(ws);
      // Answers never sent: no request follows their picks.
      for (const slot of conn.queue) if (slot.results !== null) engine.withdraw(slot.results);
      for (let i = 0; i < conn.queue.length; i++) ctx.work.end();
      conn.queue.length = 0;
      if (onDrained !== null) setImmediate(checkDrained);
    },
  };

  return {
    behavior,
    drained() {
      return new Promise((resolve) => {
        onDrained = resolve;
        setImmediate(checkDrained);
      });
    },
    closeAll() {
      for (const ws of sockets) ws.end(1001, "server shutting down");
    },
  };
}
