#!/usr/bin/env node
// The `headroom` command: parses the subcommand and its options and hands over; no logic of its own.

import { realpathSync } from "node:fs";
import { pathToFileURL } from "node:url";
import { parseArgs } from "node:util";
import { loadConfigFile } from "./config/load.js";
import { ConfigError } from "./errors.js";
import { serveUntilSignalled } from "./serve.js";

export interface CliIo {
  stdout: { write(text: string): unknown };
  stderr: { write(text: string): unknown };
}

/** Exit codes: 0 done, 1 the command failed (an invalid configuration), 2 usage error or not available. */
const EXIT_OK = 0;
const EXIT_FAILED = 1;
const EXIT_USAGE = 2;

interface Command {
  summary: string;
  help: string;
  run?: (args: string[], io: CliIo) => Promise<number>;
}

const COMMANDS: Record<string, Command> = {
  serve: {
    summary: "run the scheduler: HTTP and WebSocket API, pod scraping, planners",
    help: `Usage: headroom serve [--config FILE] [--host HOST] [--port PORT]

Run the scheduler until SIGTERM or SIGINT (in-flight work finishes first). SIGHUP reloads the
configuration file; an invalid one is refused and the running configuration kept.
Without --config it serves the bundled demo (deploy/config/demo.yaml): the three default pools with
unscraped demo pods on 127.0.0.1, on port 8080.

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
    help: "Usage: headroom sim\n\nRun the discrete-event cluster simulator.\n",
  },
  bench: {
    summary: "run the benchmarks",
    help: "Usage: headroom bench\n\nRun the benchmarks.\n",
  },
  "pod-sim": {
    summary: "serve simulated inference pods (metrics and completions)",
    help: "Usage: headroom pod-sim\n\nServe simulated inference pods.\n",
  },
  client: {
    summary: "send picks and reports to a running headroom",
    help: "Usage: headroom client\n\nSend picks and reports to a running headroom.\n",
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
    io.stdout.write(command.run ? command.help : `${command.help}\nNot available yet in this build.\n`);
    return EXIT_OK;
  }
  if (command.run === undefined) {
    io.stderr.write(`headroom ${name}: not available yet in this build\n`);
    return EXIT_USAGE;
  }
  return command.run(args, io);
}

async function serve(args: string[], io: CliIo): Promise<number> {
  let values: { config?: string; host?: string; port?: string };
  try {
    ({ values } = parseArgs({
      args,
      options: { config: { type: "string", short: "c" }, host: { type: "string" }, port: { type: "string", short: "p" } },
      strict: true,
      allowPositionals: false,
    }));
  } catch (err) {
    io.stderr.write(`headroom serve: ${(err as Error).message}\n\n${COMMANDS.serve!.help}`);
    return EXIT_USAGE;
  }
  const port = values.port === undefined ? undefined : Number(values.port);
  if (port !== undefined && !(Number.isInteger(port) && port >= 0 && port <= 65535)) {
    io.stderr.write(`headroom serve: --port must be an integer in 0..65535, got ${values.port}\n`);
    return EXIT_USAGE;
  }
  try {
    return await serveUntilSignalled({ configFile: values.config, host: values.host, port, out: io.stderr });
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    io.stderr.write(`headroom serve: invalid configuration ${values.config ?? ""}\n${err.problems.map((p) => `  - ${p}\n`).join("")}`);
    return EXIT_FAILED;
  }
}

async function validate(args: string[], io: CliIo): Promise<number> {
  let files: string[];
  try {
    const { values } = parseArgs({
      args,
      options: { config: { type: "string", short: "c", multiple: true } },
      strict: true,
      allowPositionals: false,
    });
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
      const { warnings } = loadConfigFile(file);
      io.stdout.write(`ok: ${file}\n${warnings.map((w) => `  warning: ${w}\n`).join("")}`);
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
