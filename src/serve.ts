// `headroom serve`: the engine behind the uWebSockets.js front end, until SIGTERM. Without --config it
// serves the embedded demo: a small simulated cluster (the pod simulator, one HTTP server per pod on
// loopback) in the three default pools, scraped for real, on the bundled base configuration
// (deploy/config/demo.yaml). SIGHUP, or a change to the configuration file's contents (checked every
// CONFIG_WATCH_MS), reloads it; an invalid one (or one that needs a restart) is refused and the running
// one kept.

import { readFileSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { collectDefaultMetrics, Registry } from "prom-client";
import { parse as parseYaml, stringify as stringifyYaml } from "yaml";
import { ADMIN_TOKEN_ENV, loadConfigFile, parseConfig, type Environment, type LoadedConfig } from "./config/load.js";
import type { HeadroomConfig } from "./config/schema.js";
import { usableCpus } from "./cpus.js";
import { Engine } from "./engine/engine.js";
import { ConfigError } from "./errors.js";
import { jsonLogger, type Logger } from "./log.js";
import { shippedFile } from "./paths.js";
import { DEMO_FLEET, startPodFleet, type PodFleet } from "./podsim/fleet.js";
import { createServer, type HeadroomServer } from "./server/app.js";

export const DEMO_CONFIG = shippedFile("deploy", "config", "demo.yaml");

/**
 * How often the configuration file is read for new contents. Polled, not watched: a Kubernetes
 * ConfigMap volume changes by swapping a symlink above the file, which change events on the file
 * itself do not see.
 */
export const CONFIG_WATCH_MS = 2000;

export interface ServeOptions {
  configFile?: string;
  host?: string;
  port?: number;
  /** Where the banner goes (stderr). */
  out: { write(text: string): unknown };
  logger?: Logger;
  /** How often the configuration file is checked for changes (CONFIG_WATCH_MS); 0: only on SIGHUP. */
  watchMs?: number;
  /**
   * Where HEADROOM_ADMIN_TOKEN and the remote predictor's URLs come from (process.env by default). Read
   * at every load, so a reload keeps the token the start took.
   */
  env?: Environment;
}

export interface Serving {
  engine: Engine;
  /** The demo's simulated pods; null when serving a configuration file. */
  fleet: PodFleet | null;
  server: HeadroomServer;
  port: number;
  config: HeadroomConfig;
  /**
   * Re-reads the configuration file; returns the problems when it is refused (nothing changes then).
   * Called on SIGHUP, and when the file's contents change.
   */
  reload(): string[];
  /** Stops accepting, finishes in-flight work, stops the engine. */
  close(): Promise<void>;
}

/** Starts serving; resolves once listening. */
export async function startServing(options: ServeOptions): Promise<Serving> {
  const file = options.configFile ?? DEMO_CONFIG;
  const logger = options.logger ?? jsonLogger();
  const fleet = options.configFile === undefined ? await startPodFleet({ pods: DEMO_FLEET }) : null;
  const env = options.env ?? process.env;
  const load = (): LoadedConfig => (fleet === null ? loadConfigFile(file, env) : parseConfig(demoConfig(fleet), file, env));
  /**
   * The file's contents as last seen, so that a check finds a change once; read before each load, so
   * that a change written meanwhile is found (and loaded again) rather than taken as seen.
   */
  let seenText = options.configFile === undefined ? "" : readText(file);
  let loaded: LoadedConfig;
  try {
    loaded = load();
  } catch (err) {
    await fleet?.close();
    throw err;
  }
  for (const warning of loaded.warnings) logger.log("warn", warning, { config: file });
  const config = loaded.config;
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  let engine: Engine;
  try {
    engine = await Engine.create({ config, logger, registry, env });
  } catch (err) {
    await fleet?.close();
    throw err;
  }
  engine.start();
  const server = createServer({ engine, registry, config: config.server, logger });
  const host = options.host ?? config.server.host;
  let port: number;
  try {
    port = await server.listen(host, options.port ?? config.server.port);
  } catch (err) {
    await engine.close();
    await fleet?.close();
    throw err;
  }
  const base = `http://${host.includes(":") ? `[${host}]` : host}:${port}`;
  if (config.server.adminToken === undefined && !isLoopback(host)) {
    logger.log("warn", `listening on ${host} without an admin token: anyone who reaches port ${port} can PUT /v1/pods and DELETE /v1/pods/{address}, and so choose where picks go; set ${ADMIN_TOKEN_ENV} or server.adminToken`, { config: file });
  }
  fleet?.reportTo(`${base}/v1/report`);
  options.out.write(banner(base, fleet === null ? file : null, fleet, config.workers.threads, config.pools.map((p) => p.sloLevel)));
  const reload = (): string[] => {
    if (options.configFile !== undefined) seenText = readText(file);
    try {
      const next = load();
      engine.reload(next.config);
      for (const warning of next.warnings) logger.log("warn", warning, { config: file });
      logger.log("info", "configuration reloaded", { config: file });
      return [];
    } catch (err) {
      const problems = err instanceof ConfigError ? err.problems : [(err as Error).message];
      logger.log("error", "configuration reload refused; the running configuration is kept", { config: file, problems });
      return problems;
    }
  };
  const watchMs = options.watchMs ?? CONFIG_WATCH_MS;
  let closing = false;
  // The contents are compared, not the file's times: a change written as the watch starts is not lost.
  const checkFile = () => {
    void readFile(file, "utf8")
      .catch(() => "")
      .then((text) => {
        if (!closing && text !== seenText) reload();
      });
  };
  const watch = options.configFile !== undefined && watchMs > 0 ? setInterval(checkFile, watchMs).unref() : undefined;
  return {
    engine,
    fleet,
    server,
    port,
    config,
    reload,
    async close() {
      closing = true;
      clearInterval(watch);
      await server.close();
      await engine.close();
      await fleet?.close();
    },
  };
}

/** A host that only this machine reaches; not a name other than localhost (it may resolve anywhere). */
function isLoopback(host: string): boolean {
  return host === "localhost" || host === "::1" || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host);
}

/** A file's text, or "" when it cannot be read (a reload then says why). */
function readText(file: string): string {
  try {
    return readFileSync(file, "utf8");
  } catch {
    return "";
  }
}

/** The bundled base configuration with the demo fleet's pods in its pools, scraped through their /metrics. */
function demoConfig(fleet: PodFleet): string {
  const base = parseYaml(readFileSync(DEMO_CONFIG, "utf8")) as Record<string, unknown>;
  return stringifyYaml({ ...base, pools: fleet.poolsConfig() });
}

/**
 * What serving prints: where things are, and example commands on the configured pools' levels (the
 * first for the pick, the second, else the first, for the gateway; a level not configured is refused
 * UNKNOWN_LEVEL), and for the demo a completion on one of its pools' pods, as a gateway sends it.
 */
function banner(base: string, file: string | null, fleet: PodFleet | null, workerThreads: number, levels: readonly string[]): string {
  const cpus = usableCpus();
  const pickLevel = levels[0];
  const gatewayLevel = levels[1] ?? levels[0];
  const lines = [
    `headroom serving ${file ?? "the embedded demo: a simulated cluster on loopback"} on ${base}`,
    `  kernel:   ${workerThreads} worker thread${workerThreads === 1 ? "" : "s"} beside the main thread (${cpus} CPU${cpus === 1 ? "" : "s"} usable; workers.threads)`,
    ...(pickLevel === undefined
      ? []
      : [
          `  pick:     curl -s ${base}/v1/pick -H 'content-type: application/json' -d '{"sloLevel":"${pickLevel}","inputTokens":1500,"maxTokens":200}'`,
          `  gateway:  curl -si ${base}/v1/gateway/pick -H 'x-slo-level: ${gatewayLevel}' -H 'x-prompt-tokens: 800'`,
        ]),
    `  metrics:  ${base}/metrics`,
    `  state:    ${base}/v1/state`,
    `  ready:    ${base}/readyz`,
  ];
  if (fleet !== null) {
    lines.push(
      "  simulated pods (vLLM-compatible; /v1/completions, /v1/chat/completions, /metrics):",
      ...fleet.pods.map((p) => `    ${p.spec.name.padEnd(10)} ${p.spec.role.padEnd(7)} http://${p.address}`),
    );
    // A pool of the gateway example's level first, else any configured one, with a prefill and a decode pod.
    const pools = [...new Set([gatewayLevel, ...levels])].flatMap((level) => (level === undefined ? [] : [fleet.byPool(level)]));
    const pair = pools
      .map((pods) => ({ prefill: pods.find((p) => p.spec.role === "prefill"), decode: pods.find((p) => p.spec.role === "decode") }))
      .find((p) => p.prefill !== undefined && p.decode !== undefined);
    if (pair !== undefined) {
      lines.push(
        `  a completion with its prefill on ${pair.prefill!.spec.name}, as a gateway sends it after a pick (REQUEST_ID: the pick's request id, under which the pod reports back to headroom):`,
        `    curl -s http://${pair.decode!.address}/v1/completions -H 'x-prefiller-host-port: ${pair.prefill!.address}' -H 'x-request-id: REQUEST_ID' -H 'content-type: application/json' -d '{"prompt":"Hello","max_tokens":16}'`,
      );
    }
  }
  return `${lines.join("\n")}\n`;
}

/** Serves until SIGTERM or SIGINT; SIGHUP reloads. Resolves with the exit code. */
export async function serveUntilSignalled(options: ServeOptions): Promise<number> {
  // SIGHUP's default action ends the process: one that comes while starting (a deploy tool, an edited
  // ConfigMap's sidecar) is held, and reloads once serving.
  let hupWhileStarting = false;
  const onEarlyHup = () => (hupWhileStarting = true);
  process.on("SIGHUP", onEarlyHup);
  let serving: Serving;
  try {
    serving = await startServing(options);
  } catch (err) {
    process.off("SIGHUP", onEarlyHup);
    throw err;
  }
  return new Promise((resolve) => {
    let stopping = false;
    const stop = (signal: string) => {
      options.out.write(`headroom: ${signal}, finishing in-flight work\n`);
      stopping = true;
      process.off("SIGTERM", onTerm);
      process.off("SIGINT", onInt);
      serving
        .close()
        .then(
          () => 0,
          () => 1,
        )
        .then((code) => {
          process.off("SIGHUP", onHup);
          resolve(code);
        });
    };
    const onTerm = () => stop("SIGTERM");
    const onInt = () => stop("SIGINT");
    // Kept while stopping: without a handler, SIGHUP's default action would end the process and drop
    // the in-flight work being finished.
    const onHup = () => {
      if (!stopping) void serving.reload();
    };
    process.on("SIGTERM", onTerm);
    process.on("SIGINT", onInt);
    process.on("SIGHUP", onHup);
    process.off("SIGHUP", onEarlyHup);
    if (hupWhileStarting) void serving.reload();
  });
}
