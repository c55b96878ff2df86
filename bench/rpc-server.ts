// The server bench:rpc measures: three pools of N prefill x N decode unscraped pods (bench/rpc-workload.ts),
// picks on the main thread unless flags say otherwise, and the trivial /bench/fixed handler
// answering a fixed JSON of a pick response's size. Prints {"port":…} on stdout once listening; exits
// on SIGTERM. Args: N [--planners-every-second] (every pool's planner ticking each second with ARIMA)
// [--workers T] (T kernel worker threads taking every batch instead of the main thread)
// [--product-workers] (the product's default workers settings: src/config/schema.ts) [--worker-nice N]
// (workers.nice).

import { Registry } from "prom-client";
import { parseConfig } from "../src/config/load.js";
import { Engine } from "../src/engine/engine.js";
import { silentLogger } from "../src/log.js";
import { createServer } from "../src/server/app.js";
import { rpcPoolsYaml } from "./rpc-workload.js";

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
process.stdout.write(`${JSON.stringify({ port, fixedBytes: fixed.length })}\n`);
process.on("SIGTERM", () => {
  void server.close().then(() => engine.close()).then(() => process.exit(0));
});
