// The server bench:rpc measures: three pools of N prefill x N decode unscraped pods (bench/rpc-workload.ts),
// picks on the main thread unless flags say otherwise, and the trivial /bench/fixed handler
// answering a fixed JSON of a pick response's size; beside it, on a port of its own, the trivial
// WebSocket handler (a second uWebSockets.js app in the same process): WS /v1/stream answering each pick
// frame with a fixed answer frame of a real one's size, and each report frame with a fixed "reported"
// frame, telling them apart by their first bytes only. Prints {"port":…,"trivialWsPort":…} on stdout
// once listening; exits on SIGTERM. Args: N [--planners-every-second] (every pool's planner ticking
// each second with ARIMA) [--workers T] (T kernel worker threads taking every batch instead of the main thread)
// [--product-workers] (the product's default workers settings: src/config/schema.ts) [--worker-nice N]
// (workers.nice).

import { Registry } from "prom-client";
import uws, { type us_socket } from "uWebSockets.js";
import { parseConfig } from "../src/config/load.js";
import { Engine } from "../src/engine/engine.js";
import { silentLogger } from "../src/log.js";
import { createServer } from "../src/server/app.js";
import { compactPick, decodeFrame, decodePick, encodeMsgpack, NO_SLO_HEADERS } from "../src/server/codec.js";
import { pickFrames, rpcPoolsYaml } from "./rpc-workload.js";

const n = Number(process.argv[2] ?? 16);
const workersAt = process.argv.indexOf("--workers");
const niceAt = process.argv.indexOf("--worker-nice");
const yaml = rpcPoolsYaml(n, {
  busyPlanners: process.argv.includes("--planners-every-second"),
  workers: process.argv.includes("--product-workers") ? "product" : workersAt < 0 ? 0 : Number(process.argv[workersAt + 1]),
  workerNice: niceAt < 0 ? undefined : Number(process.argv[niceAt + 1]),
});
const { config } = parseConfig(yaml);
const registry = new Registry();
const engine = await Engine.create({ config, logger: silentLogger, registry });
engine.start();

// A pick response's size, measured on this very pool, as the trivial handler's fixed answer.
const [sample] = await engine.pick([{ sloLevel: "medium", inputTokens: 1500, outputTokens: 200, prefixHit: 0.1 }]);
const fixed = JSON.stringify({ filler: "x".repeat(Math.max(0, JSON.stringify(sample).length - 14)) });
engine.report([{ requestId: (sample as { requestId: string }).requestId, ok: true }]);

const server = createServer({ engine, registry, config: config.server, logger: silentLogger, benchFixedResponse: fixed });
const port = await server.listen("127.0.0.1", 0);
const trivialWsPort = await listenTrivialWs(await fixedFrames());
process.stdout.write(`${JSON.stringify({ port, trivialWsPort, fixedBytes: fixed.length })}\n`);

/** The answer frames of the first pick frame bench/ws-load.ts sends, as the server encodes them; its picks are reported. */
async function fixedFrames(): Promise<{ picked: Uint8Array; reported: Uint8Array }> {
  const items = decodeFrame(pickFrames()[0]).items.map((item, i) => decodePick(item, NO_SLO_HEADERS, `items[${i}].`));
  const answers = await engine.pick(items);
  const { known, unknown } = engine.report(answers.map((a) => ({ requestId: (a as { requestId: string }).requestId, ok: true })));
  // Copies: msgpackr's answers are views on a buffer it writes on again.
  const picked = Uint8Array.from(encodeMsgpack({ t: "picked", items: answers.map(compactPick) }));
  return { picked, reported: Uint8Array.from(encodeMsgpack({ t: "reported", known, unknown })) };
}

/**
 * The trivial WebSocket handler: what uWebSockets.js and the generator cost without headroom. A frame is
 * `{"t":"pick",…}` or `{"t":"report",…}` with t first (bench/ws-load.ts packs it so, msgpackr behind a
 * map header of one or three bytes): the length of t's string tells them apart without decoding the frame.
 */
function listenTrivialWs(frames: { picked: Uint8Array; reported: Uint8Array }): Promise<number> {
  // The key "t" (fixstr of 1 byte), then its value's header: a fixstr of 4 bytes is "pick".
  const T_KEY = [0xa1, 0x74];
  const PICK_STRING = 0xa4;
  const isPick = (bytes: Uint8Array) => {
    const at = bytes[1] === T_KEY[0] && bytes[2] === T_KEY[1] ? 3 : 5;
    return bytes[at] === PICK_STRING;
  };
  const app = uws.App().ws("/v1/stream", {
    maxPayloadLength: config.server.maxBodyBytes,
    message(ws, message) {
      ws.send(isPick(new Uint8Array(message)) ? frames.picked : frames.reported, true);
    },
  });
  return new Promise((resolve, reject) =>
    app.listen("127.0.0.1", 0, (socket) => (socket === false ? reject(new Error("trivial WebSocket handler: cannot listen")) : resolve(uws.us_socket_local_port(socket as unknown as us_socket)))),
  );
}
process.on("SIGTERM", () => {
  void server.close().then(() => engine.close()).then(() => process.exit(0));
});
