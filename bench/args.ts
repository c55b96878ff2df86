// The benchmarks' command lines: node:util parseArgs over the options a script declares, refusing
// what it does not know. Scripts read process.argv with includes/indexOf before, so a typo (`--quik`)
// or another spelling (`--out=DIR`) was ignored and the full run went ahead, writing bench/results/.

import { parseArgs } from "node:util";

export interface BenchOption {
  type: "string" | "boolean";
  short?: string;
  /** A string option's value as the usage line names it (default VALUE). */
  value?: string;
  /** Flags passed on to another process: the value may start with '-' or be empty (otherwise a missing value). */
  passOn?: boolean;
}

export type BenchValues<O extends Record<string, BenchOption>> = { [K in keyof O]?: O[K]["type"] extends "boolean" ? boolean : string };

/** A command line a script does not accept: the caller prints it with the usage and exits 2. */
export class UsageError extends RangeError {}

/** `--quick`, `-q, --quick`, `--out DIR`: how an option appears in usage lines and errors. */
function formatOption(name: string, o: BenchOption): string {
  return `${o.short === undefined ? "" : `-${o.short}, `}--${name}${o.type === "string" ? ` ${o.value ?? "VALUE"}` : ""}`;
}

/** The options as an error lists them: `--quick, --out DIR`. */
export function describeOptions(options: Record<string, BenchOption>): string {
  return Object.entries(options)
    .map(([name, o]) => formatOption(name, o))
    .join(", ");
}

/** A script's usage line: `usage: npm run NAME -- [POSITIONALS] [--quick] [--out DIR]`. */
export function usageLine(name: string, options: Record<string, BenchOption>, positionalUsage?: string): string {
  const optional = Object.entries(options).map(([option, o]) => ` [${formatOption(option, o)}]`);
  return `usage: npm run ${name} --${positionalUsage === undefined ? "" : ` ${positionalUsage}`}${optional.join("")}\n`;
}

/**
 * Reads `argv` strictly: an unknown option, a string option without a value, a value given to a flag,
 * an option given twice, or more or fewer positional arguments than `positionals` allows (default none)
 * is a UsageError naming the option and the accepted ones.
 */
export function parseBenchArgs<O extends Record<string, BenchOption>>(
  argv: readonly string[],
  options: O,
  positionals: { min: number; max: number } = { min: 0, max: 0 },
): { values: BenchValues<O>; positionals: string[] } {
  const accepted = `accepted: ${describeOptions(options) || "none"}`;
  const config = Object.fromEntries(Object.entries(options).map(([name, o]) => [name, { type: o.type, ...(o.short === undefined ? {} : { short: o.short }) }]));
  const { tokens } = parseArgs({ args: [...argv], options: config, strict: false, allowPositionals: true, tokens: true });
  const values: Record<string, string | boolean> = {};
  const rest: string[] = [];
  for (const token of tokens) {
    if (token.kind === "positional") rest.push(token.value);
    if (token.kind !== "option") continue;
    const option = Object.hasOwn(options, token.name) ? options[token.name] : undefined;
    // parseArgs reads `-a` as the option named "a" when no option has that short form.
    const known = option !== undefined && (token.rawName === `--${token.name}` || token.rawName === `-${option.short}`);
    if (!known) throw new UsageError(`unknown option ${token.rawName} (${accepted})`);
    const shown = `--${token.name}`;
    if (Object.hasOwn(values, token.name)) throw new UsageError(`${shown} given more than once`);
    if (option.type === "boolean") {
      if (token.value !== undefined) throw new UsageError(`${shown} takes no value, got ${JSON.stringify(token.value)}`);
      values[token.name] = true;
    } else {
      if (token.value === undefined || (!option.passOn && (token.value === "" || (!token.inlineValue && token.value.startsWith("-"))))) throw new UsageError(`${shown} needs a value`);
      values[token.name] = token.value;
    }
  }
  if (rest.length > positionals.max) throw new UsageError(`unexpected argument ${JSON.stringify(rest[positionals.max])} (${accepted})`);
  if (rest.length < positionals.min) throw new UsageError(`missing argument${positionals.min - rest.length > 1 ? "s" : ""}`);
  return { values: values as BenchValues<O>, positionals: rest };
}

/**
 * parseBenchArgs for a script's main: a usage error is printed to stderr (`name: message` and the usage
 * line) and exits 2; `-h`/`--help` prints the usage line and exits 0.
 */
export function benchArgs<O extends Record<string, BenchOption>>(
  name: string,
  options: O,
  positionals: { min: number; max: number; usage?: string } = { min: 0, max: 0 },
  argv: readonly string[] = process.argv.slice(2),
): { values: BenchValues<O>; positionals: string[] } {
  const usage = usageLine(name, options, positionals.usage);
  if (argv.includes("--help") || argv.includes("-h")) {
    process.stdout.write(usage);
    process.exit(0);
  }
  try {
    return parseBenchArgs(argv, options, positionals);
  } catch (err) {
    if (!(err instanceof UsageError)) throw err;
    process.stderr.write(`${name}: ${err.message}\n${usage}`);
    process.exit(2);
  }
}
