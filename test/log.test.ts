// The JSON-lines logger with request data in its fields: a value cannot break a line or forge another,
// and a field cannot pass itself off as the line's level, message or time.

import { describe, expect, it } from "vitest";
import { jsonLogger } from "../src/log.js";

describe("jsonLogger", () => {
  it("keeps hostile values inside one line and the line's own keys its own", () => {
    let out = "";
    const logger = jsonLogger({ write: (t: string) => (out += t) });
    const requestId = 'x"\n{"time":"1970-01-01","level":"error","msg":"forged"}\r\u0000\u2028';
    logger.log("info", "request failed", { requestId, level: "error", msg: "forged", time: "1970" });
    const lines = out.split("\n").filter((l) => l !== "");
    expect(lines).toHaveLength(1);
    const entry = JSON.parse(lines[0]) as Record<string, string>;
    expect(entry.level).toBe("info");
    expect(entry.msg).toBe("request failed");
    expect(entry.time).not.toBe("1970");
    expect(entry.requestId).toBe(requestId);
    expect(Object.keys(entry).slice(0, 3)).toEqual(["time", "level", "msg"]);
  });

  it("drops lines below its level", () => {
    let out = "";
    jsonLogger({ write: (t: string) => (out += t) }, "warn").log("info", "quiet");
    expect(out).toBe("");
  });
});
