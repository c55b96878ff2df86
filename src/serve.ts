// `headroom serve`: the engine behind the uWebSockets.js front end, until SIGTERM. Without --config it
// serves the bundled demo configuration (deploy/config/demo.yaml). SIGHUP reloads the configuration
// file; an invalid one (or one that needs a restart) is refused and the running one kept.

import { collectDefaultMetrics, Registry } from "prom-client";
import { loadConfigFile } from "./config/load.js";
import type { HeadroomConfig } from "./config/schema.js";
import { Engine } from "./engine/engine.js";
import { ConfigError } from "./errors.js";
import { jsonLogger, type Logger } from "./log.js";
import { shippedFile } from "./paths.js";
import { createServer, type HeadroomServer } from "./server/app.js";

export const DEMO_CONFIG = shippedFile("deploy", "config", "demo.yaml");

export interface ServeOptions {
  configFile?: string;
  host?: string;
  port?: number;
  /** Where the banner goes (stderr). */
  out: { write(text: string): unknown };
  logger?: Logger;
}

export interface Serving {
  engine: Engine;
  server: HeadroomServer;
  port: number;
  config: HeadroomConfig;
  /** Re-reads the configuration file; returns the problems when it is refused (nothing changes then). */
  reload(): string[];
  /** Stops accepting, finishes in-flight work, stops the engine. */
  close(): Promise<void>;
}

/** Starts serving; resolves once listening. */
export async function startServing(options: ServeOptions): Promise<Serving> {
  const file = options.configFile ?? DEMO_CONFIG;
  const logger = options.logger ?? jsonLogger();
  const loaded = loadConfigFile(file);
  for (const warning of loaded.warnings) logger.log("warn", warning, { config: file });
  const config = loaded.config;
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  const engine = await Engine.create({ config, logger, registry });
  engine.start();
  const server = createServer({ engine, registry, config: config.server, logger });
  const host = options.host ?? config.server.host;
  let port: number;
  try {
    port = await server.listen(host, options.port ?? config.server.port);
  } catch (err) {
    await engine.close();
    throw err;
  }
  const base = `http://${host.includes(":") ? `[${host}]` : host}:${port}`;
  options.out.write(
    [
      `headroom serving ${file === DEMO_CONFIG ? "the demo configuration (unscraped demo pods)" : file} on ${base}`,
      `  pick:     curl -s ${base}/v1/pick -H 'content-type: application/json' -d '{"sloLevel":"high","inputTokens":1500,"maxTokens":200}'`,
      `  gateway:  curl -si ${base}/v1/gateway/pick -H 'x-slo-level: medium' -H 'x-prompt-tokens: 800'`,
      `  metrics:  ${base}/metrics`,
      `  state:    ${base}/v1/state`,
      `  ready:    ${base}/readyz`,
      "",
    ].join("\n"),
  );
  return {
    engine,
    server,
    port,
    config,
    reload() {
      try {
        const next = loadConfigFile(file);
        engine.reload(next.config);
        logger.log("info", "configuration reloaded", { config: file });
        return [];
      } catch (err) {
        const problems = err instanceof ConfigError ? err.problems : [(err as Error).message];
        logger.log("error", "configuration reload refused; the running configuration is kept", { config: file, problems });
        return problems;
      }
    },
    async close() {
      await server.close();
      await engine.close();
    },
  };
}

/** Serves until SIGTERM or SIGINT; SIGHUP reloads. Resolves with the exit code. */
export async function serveUntilSignalled(options: ServeOptions): Promise<number> {
  const serving = await startServing(options);
  return new Promise((resolve) => {
    const stop = (signal: string) => {
      options.out.write(`headroom: ${signal}, finishing in-flight work\n`);
      process.off("SIGTERM", onTerm);
      process.off("SIGINT", onInt);
      process.off("SIGHUP", onHup);
      serving.close().then(
        () => resolve(0),
        () => resolve(1),
      );
    };
    const onTerm = () => stop("SIGTERM");
    const onInt = () => stop("SIGINT");
    const onHup = () => void serving.reload();
    process.on("SIGTERM", onTerm);
    process.on("SIGINT", onInt);
    process.on("SIGHUP", onHup);
  });
}
