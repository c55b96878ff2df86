#!/usr/bin/env node
// The `headroom` command: parses the subcommand and its options and hands over; no logic of its own.

import { spawn } from "node:child_process";
import { realpathSync } from "node:fs";
import { fileURLToPath, pathToFileURL } from "node:url";
import { parseArgs, type ParseArgsConfig } from "node:util";
import { stringify as stringifyYaml } from "yaml";
import { adminTokenFrom, loadConfigFile } from "./config/load.js";
import { runClient, type ClientOptions } from "./client/client.js";
import { checkBeyondSchema } from "./engine/cluster.js";
import { ConfigError } from "./errors.js";
import { jsonLogger } from "./log.js";
import { DEMO_FLEET, startPodFleet, type FleetPodSpec } from "./podsim/fleet.js";
import { builtSibling } from "./paths.js";
import { serveUntilSignalled } from "./serve.js";
import { ListenError } from "./server/app.js";

export interface CliIo {
  stdout: { write(text: string): unknown };
  stderr: { write(text: string): unknown };
}

/** Exit codes: 0 done, 1 the command failed (an invalid configuration), 2 usage error. */
const EXIT_OK = 0;
const EXIT_FAILED = 1;
const EXIT_USAGE = 2;

interface Command {
  summary: string;
  help: string;
  run: (args: string[], io: CliIo) => Promise<number>;
}

/** The benchmarks `headroom bench NAME` runs: bench/NAME.ts, built to dist/bench/NAME.js. */
const BENCHES = ["kernel", "predictors", "rpc", "pick-path", "pick-path-ab", "crossover", "ws-ab", "sim", "planner", "planner-eval", "reliability"];

const COMMANDS: Record<string, Command> = {
  serve: {
    summary: "run the scheduler: HTTP and WebSocket API, pod scraping, planners",
    help: `Usage: headroom serve [--config FILE] [--host HOST] [--port PORT]

Run the scheduler until SIGTERM or SIGINT (in-flight work finishes first). SIGHUP reloads the
configuration file; an invalid one is refused and the running configuration kept.
Without --config it serves the embedded demo on 127.0.0.1:8080: a small simulated cluster (the pod
simulator's six pods in the three default pools, on free loopback ports) scraped for real, on the base
configuration deploy/config/demo.yaml.

Options:
  -c, --config FILE  the configuration file
      --host HOST    overrides server.host
  -p, --port PORT    overrides server.port (0: any free port)
  -h, --help         show this help
`,
    run: serve,
  },
  validate: {
    summary: "check configuration files without starting",
    help: `Usage: headroom validate --config FILE [--config FILE ...]

Check configuration files without starting: a headroom configuration or a seed-shaped
EndpointPickerConfig. Prints "ok: FILE" and any warnings; exits 1 if a file is invalid.

Options:
  -c, --config FILE  the file to check (repeatable)
  -h, --help         show this help
`,
    run: validate,
  },
  sim: {
    summary: "run the discrete-event cluster simulator",
    help: `Usage: headroom sim [--quick] [--scenarios A,B] [--policies P,Q] [--out DIR]

Run the discrete-event cluster simulator's sweep (bench/sim.ts, also \`npm run bench:sim\`): every
scenario, policy and rate; JSON lines on stdout, a Markdown table and SVG plots in DIR.

Options:
  --quick            3 rates, 20 s of arrivals, results in a temporary directory
  --scenarios LIST   scenario names (bench/scenarios/*.yaml)
  --policies LIST    policy names
  --out DIR          where the table and plots go (default bench/results)
  -h, --help         show this help
`,
    run: (args, io) => runBuiltScript("sim", args, io),
  },
  bench: {
    summary: "run the benchmarks",
    help: `Usage: headroom bench NAME [options]

Run one benchmark (bench/NAME.ts, also \`npm run bench:NAME\`): JSON lines on stdout, progress on
stderr; its options are passed on (most take --quick). See the README's Benchmarks section.

Benchmarks: ${BENCHES.join(", ")}
`,
    run: bench,
  },
  "pod-sim": {
    summary: "serve simulated inference pods (metrics and completions)",
    help: `Usage: headroom pod-sim [--pod NAME:ROLE[:PORT[:TP]]]... [--host HOST] [--report-url URL] [--print-config]

Serve simulated vLLM pods on loopback until SIGTERM or SIGINT: one OpenAI-compatible HTTP server per
pod (/v1/completions, /v1/chat/completions, streaming or not; /metrics with vLLM's names), timed by the
shipped latency profile and each pod's own load. A decode pod given x-prefiller-host-port sends the
prompt to that prefill pod first. Prints one JSON line per pod ({"name","role","address","metricsUrl"}).

Options:
      --pod SPEC        a pod: NAME:ROLE (prefill, decode or both), optionally :PORT (0: any) and :TP;
                        repeatable. Without --pod, the demo's six pods in the three default pools
      --host HOST       the address to listen on (default 127.0.0.1)
      --report-url URL  headroom's POST /v1/report URL: decode pods report each finished request
      --print-config    also print a headroom \`pools\` section (YAML) for these pods
`,
    run: podSim,
  },
  client: {
    summary: "send OpenAI requests with an SLO and report what happened",
    help: `Usage: headroom client (--gateway URL | --headroom URL) [--level L] [--ttft-ms N] [--tpot-ms N]
                       [--prompt-tokens N] [--max-tokens N] [--count N] [--concurrency N] [--chat]

Send streamed OpenAI completions with an SLO, either through a gateway (nginx with
deploy/gateway/nginx.conf) or through headroom itself (a gateway pick, then the completion on the
decode pod it named, with its prefill pod in x-prefiller-host-port). Prints one JSON line per request
(pool, pods, TTFT and TPOT measured from the stream, the targets and whether both were met) and a
summary line. The targets are the explicit ones, else the pool's (from headroom's /v1/route, or the
default pools' when only a gateway is given).

Options:
      --gateway URL        the gateway's base URL (requests go to URL/v1/completions)
      --headroom URL       headroom's base URL (picks, and the pool's targets)
      --level L            x-slo-level
      --ttft-ms N          x-slo-ttft-ms
      --tpot-ms N          x-slo-tpot-ms
      --prompt-tokens N    prompt size (default 512)
      --max-tokens N       output tokens (default 64)
      --count N            requests (default 1)
      --concurrency N      requests at once (default 1)
      --chat               /v1/chat/completions instead of /v1/completions
`,
    run: client,
  },
};

function usage(): string {
  const width = Math.max(...Object.keys(COMMANDS).map((name) => name.length));
  const lines = Object.entries(COMMANDS).map(([name, c]) => `  ${name.padEnd(width)}  ${c.summary}`);
  return `Usage: headroom <command> [options]

SLO-aware scheduler for disaggregated LLM serving.

Commands:
${lines.join("\n")}

Run "headroom <command> --help" for a command's options.
`;
}

const wantsHelp = (args: string[]) => args.includes("--help") || args.includes("-h");

export async function runCli(argv: string[], io: CliIo = process): Promise<number> {
  const [name, ...args] = argv;
  if (name === undefined) {
    io.stderr.write(usage());
    return EXIT_USAGE;
  }
  if (name === "--help" || name === "-h" || name === "help") {
    io.stdout.write(usage());
    return EXIT_OK;
  }
  const command = Object.hasOwn(COMMANDS, name) ? COMMANDS[name] : undefined;
  if (command === undefined) {
    io.stderr.write(`headroom: unknown command "${name}"\n\n${usage()}`);
    return EXIT_USAGE;
  }
  if (wantsHelp(args)) {
    io.stdout.write(command.help);
    return EXIT_OK;
  }
  return command.run(args, io);
}

type Options = NonNullable<ParseArgsConfig["options"]>;

/**
 * parseArgs as every command calls it (strict, no positionals), refusing an option given twice unless
 * it takes several: parseArgs keeps the last, so `serve -c a.yaml -c b.yaml` served b.yaml without a word.
 */
function parseOptions<O extends Options>(args: string[], options: O) {
  const { values, tokens } = parseArgs({ args, options, strict: true, allowPositionals: false, tokens: true });
  const seen = new Set<string>();
  for (const token of tokens) {
    if (token.kind !== "option" || options[token.name]?.multiple === true) continue;
    if (seen.has(token.name)) throw new Error(`--${token.name} given more than once`);
    seen.add(token.name);
  }
  return values;
}

/** An empty --host listens on every interface, whatever the configuration says. */
function checkHost(host: string | undefined): void {
  if (host !== undefined && host.trim() === "") throw new Error(`--host must be a host name or address, got ${JSON.stringify(host)}`);
}

async function serve(args: string[], io: CliIo): Promise<number> {
  let values: { config?: string; host?: string; port?: string };
  try {
    values = parseOptions(args, { config: { type: "string", short: "c" }, host: { type: "string" }, port: { type: "string", short: "p" } });
    checkHost(values.host);
  } catch (err) {
    io.stderr.write(`headroom serve: ${(err as Error).message}\n\n${COMMANDS.serve!.help}`);
    return EXIT_USAGE;
  }
  // Digits only: Number() reads "" and " " as 0 (any free port), "0x1f90" and "8e3" as ports too.
  const port = values.port === undefined ? undefined : /^\d{1,5}$/.test(values.port) ? Number(values.port) : NaN;
  if (port !== undefined && !(port >= 0 && port <= 65535)) {
    io.stderr.write(`headroom serve: --port must be an integer in 0..65535, got ${JSON.stringify(values.port)}\n`);
    return EXIT_USAGE;
  }
  try {
    return await serveUntilSignalled({ configFile: values.config, host: values.host, port, out: io.stderr, logger: jsonLogger(io.stderr) });
  } catch (err) {
    if (err instanceof ListenError) {
      io.stderr.write(`headroom serve: ${err.message}\n`);
      return EXIT_FAILED;
    }
    if (!(err instanceof ConfigError)) throw err;
    io.stderr.write(`headroom serve: invalid configuration ${values.config ?? ""}\n${err.problems.map((p) => `  - ${p}\n`).join("")}`);
    return EXIT_FAILED;
  }
}

async function bench(args: string[], io: CliIo): Promise<number> {
  const [name, ...rest] = args;
  if (name === undefined || !BENCHES.includes(name)) {
    io.stderr.write(`headroom bench: ${name === undefined ? "a benchmark name is required" : `unknown benchmark "${name}"`}\n\n${COMMANDS.bench!.help}`);
    return EXIT_USAGE;
  }
  return runBuiltScript(name, rest, io);
}

/** Runs dist/bench/NAME.js in a child process, its output passed on; resolves with its exit code. */
function runBuiltScript(name: string, args: string[], io: CliIo): Promise<number> {
  const script = fileURLToPath(builtSibling(import.meta.url, `../bench/${name}.js`));
  const child = spawn(process.execPath, [script, ...args], { stdio: ["ignore", "pipe", "pipe"] });
  child.stdout.on("data", (chunk: Buffer) => io.stdout.write(chunk.toString()));
  child.stderr.on("data", (chunk: Buffer) => io.stderr.write(chunk.toString()));
  return new Promise((resolve) => {
    child.on("error", (err) => {
      io.stderr.write(`headroom: cannot run ${script}: ${err.message}\n`);
      resolve(EXIT_FAILED);
    });
    child.on("close", (code) => resolve(code ?? EXIT_FAILED));
  });
}

async function podSim(args: string[], io: CliIo): Promise<number> {
  let values: { pod?: string[]; host?: string; "report-url"?: string; "print-config"?: boolean };
  let pods: FleetPodSpec[];
  try {
    values = parseOptions(args, {
      pod: { type: "string", multiple: true },
      host: { type: "string" },
      "report-url": { type: "string" },
      "print-config": { type: "boolean" },
    });
    checkHost(values.host);
    pods = values.pod === undefined ? [...DEMO_FLEET] : values.pod.map(parsePodSpec);
    checkFleet(pods);
    if (values["report-url"] !== undefined && !/^https?:\/\/[^/]/.test(values["report-url"])) throw new Error(`--report-url must be an http(s) URL, got ${values["report-url"]}`);
  } catch (err) {
    io.stderr.write(`headroom pod-sim: ${(err as Error).message}\n\n${COMMANDS["pod-sim"]!.help}`);
    return EXIT_USAGE;
  }
  let fleet: Awaited<ReturnType<typeof startPodFleet>>;
  try {
    fleet = await startPodFleet({ pods, host: values.host, reportUrl: values["report-url"] });
  } catch (err) {
    // A port in use or a host that is not this one's: one line, not a stack trace.
    const code = (err as NodeJS.ErrnoException).code;
    if (typeof code !== "string") throw err;
    io.stderr.write(`headroom pod-sim: cannot listen: ${(err as Error).message}\n`);
    return EXIT_FAILED;
  }
  for (const p of fleet.pods) io.stdout.write(`${JSON.stringify({ name: p.spec.name, role: p.spec.role, address: p.address, metricsUrl: p.metricsUrl })}\n`);
  if (values["print-config"]) io.stdout.write(stringifyYaml({ pools: fleet.poolsConfig() }));
  return new Promise((resolve) => {
    const stop = () => {
      process.off("SIGTERM", stop);
      process.off("SIGINT", stop);
      fleet.close().then(
        () => resolve(EXIT_OK),
        () => resolve(EXIT_FAILED),
      );
    };
    process.on("SIGTERM", stop);
    process.on("SIGINT", stop);
  });
}

async function client(args: string[], io: CliIo): Promise<number> {
  let options: ClientOptions;
  try {
    const values = parseOptions(args, {
      gateway: { type: "string" },
      headroom: { type: "string" },
      level: { type: "string" },
      "ttft-ms": { type: "string" },
      "tpot-ms": { type: "string" },
      "prompt-tokens": { type: "string" },
      "max-tokens": { type: "string" },
      count: { type: "string" },
      concurrency: { type: "string" },
      chat: { type: "boolean" },
    });
    const number = (name: string, raw: string | undefined, fallback: number | undefined, integer: boolean, max: number): number | undefined => {
      if (raw === undefined) return fallback;
      const v = Number(raw);
      if (!(Number.isFinite(v) && v > 0 && v <= max && (!integer || Number.isInteger(v)))) throw new Error(`--${name} must be ${integer ? "an integer" : "a number"} in (0, ${max}], got ${raw}`);
      return v;
    };
    const url = (name: string, raw: string | undefined) => {
      if (raw !== undefined && !/^https?:\/\/[^/]/.test(raw)) throw new Error(`--${name} must be an http(s) URL, got ${raw}`);
      return raw?.replace(/\/+$/, "");
    };
    options = {
      gatewayUrl: url("gateway", values.gateway),
      headroomUrl: url("headroom", values.headroom),
      level: values.level,
      ttftMs: number("ttft-ms", values["ttft-ms"], undefined, false, 3_600_000),
      tpotMs: number("tpot-ms", values["tpot-ms"], undefined, false, 3_600_000),
      promptTokens: number("prompt-tokens", values["prompt-tokens"], 512, true, 262_144)!,
      maxTokens: number("max-tokens", values["max-tokens"], 64, true, 65_536)!,
      count: number("count", values.count, 1, true, 1_000_000)!,
      concurrency: number("concurrency", values.concurrency, 1, true, 1024)!,
      chat: values.chat === true,
      timeoutMs: 600_000,
    };
    if (options.gatewayUrl === undefined && options.headroomUrl === undefined) throw new Error("give --gateway URL or --headroom URL");
  } catch (err) {
    io.stderr.write(`headroom client: ${(err as Error).message}\n\n${COMMANDS.client!.help}`);
    return EXIT_USAGE;
  }
  const summary = await runClient(options, (r) => io.stdout.write(`${JSON.stringify(r)}\n`));
  io.stdout.write(`${JSON.stringify({ summary })}\n`);
  return summary.succeeded === summary.requests ? EXIT_OK : EXIT_FAILED;
}

/** Pods given by --pod: each name once, each fixed port once. */
function checkFleet(pods: readonly FleetPodSpec[]): void {
  const names = new Set<string>();
  const ports = new Set<number>();
  for (const p of pods) {
    if (names.has(p.name)) throw new Error(`--pod: the name ${p.name} is given twice`);
    names.add(p.name);
    if (p.port === undefined || p.port === 0) continue;
    if (ports.has(p.port)) throw new Error(`--pod: the port ${p.port} is given twice`);
    ports.add(p.port);
  }
}

/** NAME:ROLE[:PORT[:TP]]. */
export function parsePodSpec(text: string): FleetPodSpec {
  const [name, role, port, tp, ...rest] = text.split(":");
  if (rest.length > 0 || name === undefined || role === undefined) throw new Error(`--pod ${text}: expected NAME:ROLE[:PORT[:TP]]`);
  if (!/^[A-Za-z0-9][A-Za-z0-9_.-]*$/.test(name)) throw new Error(`--pod ${text}: the name may hold letters, digits, '_', '.' and '-'`);
  if (role !== "prefill" && role !== "decode" && role !== "both") throw new Error(`--pod ${text}: the role must be prefill, decode or both`);
  // Digits only, as serve --port: Number() reads "0x50" as 80, "8e3" as 8000 and " " as 0.
  const portNumber = port === undefined || port === "" ? 0 : /^\d{1,5}$/.test(port) ? Number(port) : NaN;
  if (!(portNumber >= 0 && portNumber <= 65535)) throw new Error(`--pod ${text}: the port must be an integer in 0..65535`);
  const tpNumber = tp === undefined ? 1 : /^\d{1,2}$/.test(tp) ? Number(tp) : NaN;
  if (!(tpNumber >= 1 && tpNumber <= 64)) throw new Error(`--pod ${text}: TP must be an integer in 1..64`);
  return { name, role, port: portNumber, tp: tpNumber };
}

async function validate(args: string[], io: CliIo): Promise<number> {
  let files: string[];
  try {
    const values = parseOptions(args, { config: { type: "string", short: "c", multiple: true } });
    files = values.config ?? [];
  } catch (err) {
    io.stderr.write(`headroom validate: ${(err as Error).message}\n\n${COMMANDS.validate!.help}`);
    return EXIT_USAGE;
  }
  if (files.length === 0) {
    io.stderr.write(`headroom validate: --config FILE is required\n\n${COMMANDS.validate!.help}`);
    return EXIT_USAGE;
  }

  let code = EXIT_OK;
  for (const file of files) {
    try {
      const { config, warnings } = loadConfigFile(file);
      const beyond = checkBeyondSchema(config, process.env);
      if (beyond.profiles.length > 0) throw new ConfigError(beyond.profiles);
      // HEADROOM_ADMIN_TOKEN as serve reads it: validate may run where the server's environment is not.
      const environment = [...beyond.environment, ...adminTokenFrom(process.env).problems].map((p) => `serve refuses this configuration in an environment like this one: ${p}`);
      io.stdout.write(`ok: ${file}\n${[...warnings, ...environment, ...beyond.warnings].map((w) => `  warning: ${w}\n`).join("")}`);
    } catch (err) {
      if (!(err instanceof ConfigError)) throw err;
      io.stderr.write(`invalid: ${file}\n${err.problems.map((p) => `  - ${p}\n`).join("")}`);
      code = EXIT_FAILED;
    }
  }
  return code;
}

function isMain(): boolean {
  const script = process.argv[1];
  if (script === undefined) return false;
  try {
    // npm installs the bin as a symlink; the module URL is the resolved path.
    return import.meta.url === pathToFileURL(realpathSync(script)).href;
  } catch {
    return false;
  }
}

if (isMain()) {
  runCli(process.argv.slice(2)).then(
    (code) => {
      process.exitCode = code;
    },
    (err: unknown) => {
      process.stderr.write(`headroom: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
      process.exitCode = EXIT_FAILED;
    },
  );
}
