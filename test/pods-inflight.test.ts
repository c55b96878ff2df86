// In-flight load (SPEC.md §5): a pick loads its pods at once; a report, a scrape late enough to count
// it, or expiry releases it; unknown reports are counted and ignored. The decode side of a remote
// prefill is checked against real scrapes of simulated pods, which receive it as llm-d's sidecar sends it.

import fc from "fast-check";
import { Registry } from "prom-client";
import { describe, expect, it } from "vitest";
import { ManualClock } from "../src/clock.js";
import { BUILTIN_PROFILE } from "../src/config/schema.js";
import { silentLogger } from "../src/log.js";
import { COARSE_SLOT_MS, EXPIRY_HORIZON_MS, EXPIRY_SLOT_MS, IDLE_POD_FORGET_MS, InflightLoad, SLOTS_KEPT, type InflightPick, type PodInflight } from "../src/pods/inflight.js";
import { Scraper } from "../src/pods/scraper.js";
import { SimulatedPod, type PodSimEnvironment } from "../src/podsim/pod.js";
import { LatencyProfile } from "../src/predictors/latency-profile.js";
import { until } from "./fixtures/wait.js";

function setup() {
  const clock = new ManualClock(0);
  const inflight = new InflightLoad({ clock, reflectDelayMs: 200, ttlFactor: 2 });
  return { clock, inflight };
}

function pick(requestId: string, over: Partial<InflightPick> = {}): InflightPick {
  return {
    requestId,
    pool: "p",
    prefill: "P:1",
    decode: "D:1",
    inputTokens: 1200,
    outputTokens: 200,
    prefillTokens: 1000,
    prefillComputeMs: 30,
    kvTokens: 1100,
    prefillDoneMs: 50,
    decodeDoneMs: 1000,
    predicted: { prefillTtftMs: 40, decodeTtftMs: 4, transferMs: 6, ttftMs: 50, tpotMs: 4.75 },
    decodeFeatures: "features of D",
    ...over,
  };
}

describe("loading and releasing", () => {
  it("a remote pick queues prefill on its prefill pod and a sequence on its decode pod", () => {
    const { clock, inflight } = setup();
    inflight.add(pick("r1"));
    expect(inflight.podLoad("p:1")).toEqual({ prefillRequests: 1, prefillTokens: 1000, prefillMsAhead: 30, localPrefillMsAhead: 0, decodeRequests: 0, decodeTokens: 0 });
    expect(inflight.podLoad("D:1")).toEqual({ prefillRequests: 0, prefillTokens: 0, prefillMsAhead: 0, localPrefillMsAhead: 0, decodeRequests: 1, decodeTokens: 1100 });
    // Prefill work ahead shrinks as its predicted completion nears, and ends there.
    clock.advance(40);
    expect(inflight.podLoad("P:1").prefillMsAhead).toBe(10);
    clock.advance(10);
    expect(inflight.podLoad("P:1").prefillRequests).toBe(0);
    expect(inflight.podLoad("D:1").decodeRequests).toBe(1);
  });

  it("a local pick puts both its prefill and its sequence on the decode pod", () => {
    const { inflight } = setup();
    inflight.add(pick("r1", { prefill: undefined }));
    expect(inflight.podLoad("D:1")).toMatchObject({ prefillRequests: 1, prefillMsAhead: 30, localPrefillMsAhead: 30, decodeRequests: 1 });
  });

  it("a report releases the request everywhere; an unknown or repeated report is counted", () => {
    const { inflight } = setup();
    inflight.add(pick("r1"));
    expect(inflight.report("r1")?.requestId).toBe("r1");
    expect(inflight.podLoad("D:1").decodeRequests).toBe(0);
    expect(inflight.report("r1")).toBeUndefined();
    expect(inflight.report("nope")).toBeUndefined();
    expect(inflight.counters).toMatchObject({ released: { report: 1, scrape: 0, expired: 0 }, unknownReports: 2 });
  });

  it("a pick withdrawn (its answer undelivered) is released everywhere and counted apart from reports", () => {
    const { inflight } = setup();
    inflight.add(pick("r1"));
    inflight.add(pick("r2"));
    expect(inflight.withdraw("r1")).toBe(true);
    expect(inflight.withdraw("r1")).toBe(false);
    expect(inflight.podLoad("P:1").prefillRequests).toBe(1);
    expect(inflight.podLoad("D:1").decodeRequests).toBe(1);
    expect(inflight.report("r1")).toBeUndefined();
    expect(inflight.counters).toMatchObject({ released: { report: 0, undelivered: 1 }, unknownReports: 1 });
  });

  it("a scrape releases only picks dispatched reflectDelayMs before it, pod by pod, and the report still finds them", () => {
    const { clock, inflight } = setup();
    inflight.add(pick("early", { prefill: undefined, prefillDoneMs: 10_000 }));
    inflight.add(pick("early-remote", { prefillDoneMs: 10_000 }));
    clock.advance(150);
    inflight.add(pick("late", { prefill: undefined, prefillDoneMs: 10_000 }));
    inflight.add(pick("late-remote", { prefillDoneMs: 10_000 }));
    clock.advance(60);
    inflight.onScrape("D:1", 205);
    // The local "early" only: the remote prefills are not predicted done, so D:1 cannot have them yet.
    expect(inflight.podLoad("D:1").decodeRequests).toBe(3);
    expect(inflight.podLoad("P:1").prefillRequests).toBe(2);
    inflight.onScrape("P:1", 205);
    expect(inflight.podLoad("P:1").prefillRequests).toBe(1);
    expect(inflight.counters.released.scrape).toBe(1);
    expect(inflight.report("early")).toBeDefined();
    expect(inflight.report("early-remote")).toBeDefined();
    expect(inflight.counters.unknownReports).toBe(0);
    expect(inflight.counters.released.report).toBe(1);
  });

  it("a remote prefill's decode side stays until a scrape reflectDelayMs after its predicted prefill and transfer", () => {
    const { clock, inflight } = setup();
    // Prefill predicted done at 500 on P:1, the KV on D:1 6 ms later (predicted.transferMs).
    inflight.add(pick("slow-prefill", { prefillDoneMs: 500, decodeDoneMs: 5000 }));
    inflight.add(pick("soon-prefill", { decode: "D:2", prefillDoneMs: 50, decodeDoneMs: 5000 }));
    clock.advance(800);
    // The prefill pod has had the request since dispatch: its side goes as before.
    inflight.onScrape("P:1", 300);
    expect(inflight.podLoad("P:1").prefillRequests).toBe(0);
    inflight.onScrape("D:1", 300);
    expect(inflight.podLoad("D:1").decodeRequests).toBe(1);
    inflight.onScrape("D:1", 705);
    expect(inflight.podLoad("D:1").decodeRequests).toBe(1);
    inflight.onScrape("D:1", 706);
    expect(inflight.podLoad("D:1")).toMatchObject({ decodeRequests: 0, decodeTokens: 0 });
    // Arrivals are kept in time order, not dispatch order: the later pick's prefill was done sooner.
    inflight.onScrape("D:2", 256);
    expect(inflight.podLoad("D:2").decodeRequests).toBe(0);
    expect(inflight.counters.released.scrape).toBe(2);
  });

  it("expires entries older than ttlFactor x their predicted duration, counting those that still held load", () => {
    const { clock, inflight } = setup();
    inflight.add(pick("held"));
    inflight.add(pick("reconciled", { decode: "D:2", prefill: "P:2" }));
    clock.advance(300);
    inflight.onScrape("D:2", 300);
    inflight.onScrape("P:2", 300);
    clock.advance(1700);
    expect(inflight.expire()).toBe(0);
    clock.advance(1);
    expect(inflight.expire()).toBe(1);
    expect(inflight.size).toBe(0);
    expect(inflight.counters.released.expired).toBe(1);
  });

  it("keeps a slot emptied by reports until its time passes, fine or coarse, and no more than SLOTS_KEPT of them in all", () => {
    const { clock, inflight } = setup();
    // Each pick expires in a slot of its own and is reported at once: fine slots 64 ms apart within
    // the horizon, then coarse spans (ttlFactor is 2).
    const fine = 900;
    const picks = SLOTS_KEPT + 100;
    const expiresMs = (i: number) => (i < fine ? 2000 + EXPIRY_SLOT_MS * i : EXPIRY_HORIZON_MS + COARSE_SLOT_MS * (i - fine));
    expect(expiresMs(fine - 1)).toBeLessThan(EXPIRY_HORIZON_MS);
    for (let i = 0; i < picks; i++) {
      const requestId = inflight.add(pick(`r${i}`, { decodeDoneMs: expiresMs(i) / 2 }));
      expect(inflight.report(requestId)?.requestId).toBe(`r${i}`);
      expect(inflight.slotCount).toBe(Math.min(i + 1, SLOTS_KEPT));
    }
    expect(inflight.size).toBe(0);
    // Once their time has passed, expiry forgets them.
    clock.advance(expiresMs(picks) + COARSE_SLOT_MS);
    expect(inflight.expire()).toBe(0);
    expect(inflight.slotCount).toBe(0);
  });

  it("picks predicted to run for hours keep a fine slot per 64 ms of the horizon and a coarse one per span beyond", () => {
    const { inflight } = setup();
    // 20,000 picks at once, expiring 2 x (up to 10 hours) ahead: a slot per 64 ms would be one each.
    const hours = 10 * 3_600_000;
    for (let i = 0; i < 20_000; i++) inflight.add(pick(`r${i}`, { decodeDoneMs: ((i * 7919) % 20_000) * (hours / 20_000) }));
    expect(inflight.slotCount).toBeLessThanOrEqual((EXPIRY_HORIZON_MS + COARSE_SLOT_MS) / EXPIRY_SLOT_MS + 2 + (2 * hours) / COARSE_SLOT_MS + 1);
  });

  it("picks predicted to run for hours expire on time, none early, as passes 10 s apart walk the slots", () => {
    const { clock, inflight } = setup();
    // 10 s is 157 fine slots, fewer than the table soon holds (past that, a pass takes the long-gap
    // path, which would find a span left uncascaded), and less than a span: each pass walks the fine
    // slots passed and cascades the spans come within the horizon, one by one.
    const stepMs = 10_000;
    const hours = 3 * 3_600_000;
    let live: number[] = [];
    let lastExpiresMs = 0;
    for (let step = 0; step < 12 * 360; step++) {
      const now = clock.nowMs();
      for (let i = 0; i < 10; i++) {
        const durationMs = (((step * 10 + i) * 7919) % 1000) * (hours / 1000) + i;
        inflight.add(pick(`r${step}.${i}`, { decodeDoneMs: now + durationMs }));
        live.push(now + 2 * Math.max(durationMs, 1));
        lastExpiresMs = Math.max(lastExpiresMs, live.at(-1)!);
      }
      clock.advance(stepMs);
      const passed = live.filter((expiresMs) => expiresMs < now + stepMs).length;
      expect(inflight.expire(), `at ${now + stepMs} ms`).toBe(passed);
      live = live.filter((expiresMs) => expiresMs >= now + stepMs);
      expect(inflight.size).toBe(live.length);
      expect(inflight.slotCount).toBeLessThanOrEqual((EXPIRY_HORIZON_MS + COARSE_SLOT_MS) / EXPIRY_SLOT_MS + 2 + Math.ceil((lastExpiresMs - clock.nowMs()) / COARSE_SLOT_MS) + 1);
    }
  });

  it("a repeated request id replaces the earlier pick (a gateway retry) and is counted", () => {
    const { inflight } = setup();
    inflight.add(pick("r1"));
    inflight.add(pick("r1", { decode: "D:2" }));
    expect(inflight.podLoad("D:1").decodeRequests).toBe(0);
    expect(inflight.podLoad("D:2").decodeRequests).toBe(1);
    expect(inflight.counters.duplicatePicks).toBe(1);
  });

  it("a pick without a request id gets a minted one that its report finds, once, and no other spelling finds", () => {
    const { inflight } = setup();
    const { requestId: _, ...anonymous } = pick("unused");
    const first = inflight.add(anonymous);
    const second = inflight.add(anonymous);
    expect(first).not.toBe(second);
    expect(inflight.size).toBe(2);
    const dot = first.lastIndexOf(".");
    const dash = first.indexOf("-");
    // The row with a leading zero, and the id upper-cased: parseInt reads the same row from both.
    // (A prefix of digits alone, 0.4 % of them, has no capitals: that spelling is then the id itself.)
    const forgeries = [`${first.slice(0, dash + 1)}0${first.slice(dash + 1)}`, first.toUpperCase(), first.slice(0, dot), `${first}0`].filter((f) => f !== first);
    for (const forged of forgeries) {
      expect(inflight.has(forged), forged).toBe(false);
      expect(inflight.report(forged), forged).toBeUndefined();
    }
    expect(inflight.counters.unknownReports).toBe(forgeries.length);
    expect(inflight.report(first)?.requestId).toBe(first);
    expect(inflight.report(first)).toBeUndefined();
    // The row is reused, in a new generation: the old id does not find the new pick.
    const third = inflight.add(anonymous);
    expect(third).not.toBe(first);
    expect(inflight.has(first)).toBe(false);
    expect(inflight.has(third)).toBe(true);
    expect(inflight.size).toBe(2);
  });

  it("a minted row spelled in capitals or with a leading zero names nothing, with the table's own prefix", () => {
    const { inflight } = setup();
    const { requestId: _, ...anonymous } = pick("unused");
    // Rows 0 to 10: the eleventh is row "a" in base 36.
    const ids = Array.from({ length: 11 }, () => inflight.add(anonymous));
    const tenth = ids[10]!;
    const dash = tenth.indexOf("-");
    const dot = tenth.lastIndexOf(".");
    expect(tenth.slice(dash + 1, dot)).toBe("a");
    const prefix = tenth.slice(0, dash + 1);
    const generation = tenth.slice(dot);
    for (const forged of [`${prefix}A${generation}`, `${prefix}0a${generation}`, `${tenth.slice(0, dot)}.00`, `${prefix}${generation}`]) {
      expect(inflight.has(forged), forged).toBe(false);
    }
    expect(inflight.has(tenth)).toBe(true);
  });

  it("a pick that brings a minted id as its own (a gateway retry) replaces the minted pick", () => {
    const { inflight } = setup();
    const { requestId: _, ...anonymous } = pick("unused");
    const minted = inflight.add(anonymous);
    expect(inflight.add(pick(minted, { decode: "D:2" }))).toBe(minted);
    expect(inflight.counters.duplicatePicks).toBe(1);
    expect(inflight.podLoad("D:1").decodeRequests).toBe(0);
    expect(inflight.report(minted)?.decode).toBe("D:2");
    expect(inflight.size).toBe(0);
  });

  it("keeps a pod that holds nothing until it has been idle for IDLE_POD_FORGET_MS, then forgets it", () => {
    const { clock, inflight } = setup();
    inflight.add(pick("r1"));
    inflight.report("r1");
    inflight.expire();
    expect(inflight.podCount).toBe(2);
    clock.advance(IDLE_POD_FORGET_MS - 1);
    inflight.add(pick("r2", { prefill: undefined, decodeDoneMs: 10 * IDLE_POD_FORGET_MS }));
    inflight.expire();
    expect(inflight.podCount).toBe(2);
    // P:1 has been idle that long; D:1 holds r2.
    clock.advance(1);
    inflight.expire();
    expect(inflight.podCount).toBe(1);
    expect(inflight.podLoad("D:1").decodeRequests).toBe(1);
    // Idle time counts from the first pass that finds the pod empty again.
    inflight.report("r2");
    clock.advance(IDLE_POD_FORGET_MS);
    inflight.expire();
    expect(inflight.podCount).toBe(1);
    clock.advance(IDLE_POD_FORGET_MS);
    inflight.expire();
    expect(inflight.podCount).toBe(0);
  });

  it("a pod that leaves stops carrying load but its requests' reports are still recognised", () => {
    const { inflight } = setup();
    inflight.add(pick("r1"));
    inflight.forgetPod("D:1");
    expect(inflight.podLoad("D:1").decodeRequests).toBe(0);
    expect(inflight.podLoad("P:1").prefillRequests).toBe(1);
    // Released by the pods leaving once neither holds it any more.
    expect(inflight.counters.released.pod_left).toBe(0);
    inflight.forgetPod("P:1");
    expect(inflight.counters.released.pod_left).toBe(1);
    expect(inflight.report("r1")).toBeDefined();
    expect(inflight.counters.released.report).toBe(0);
  });
});

/**
 * The in-flight rules stated once, per entry, with no bookkeeping: a side counts on a pod until a
 * report, a late-enough scrape of that pod, the pod leaving or expiry; prefill counts only before its
 * predicted completion. The class keeps running sums and pruned sets instead; both must agree.
 */
class Reference {
  readonly entries = new Map<string, { pick: InflightPick; dispatchMs: number; prefillHeld: boolean; decodeHeld: boolean }>();
  constructor(private readonly clock: ManualClock, private readonly reflectDelayMs: number, private readonly ttlFactor: number) {}

  add(pick: InflightPick): void {
    this.entries.delete(pick.requestId);
    this.entries.set(pick.requestId, { pick, dispatchMs: this.clock.nowMs(), prefillHeld: pick.prefill !== undefined, decodeHeld: true });
  }

  report(requestId: string): void {
    this.entries.delete(requestId);
  }

  /** A scrape counts what reached the pod reflectDelayMs before it; a remote decode, its predicted KV arrival. */
  release(address: string, scrapedAtMs: number): void {
    for (const e of this.entries.values()) {
      const remote = e.pick.prefill !== undefined && e.pick.prefill !== e.pick.decode;
      const decodeReachedMs = remote ? e.pick.prefillDoneMs + e.pick.predicted.transferMs : e.dispatchMs;
      if (e.pick.prefill === address && e.dispatchMs + this.reflectDelayMs <= scrapedAtMs) e.prefillHeld = false;
      if (e.pick.decode === address && decodeReachedMs + this.reflectDelayMs <= scrapedAtMs) e.decodeHeld = false;
    }
  }

  /** Drops the entries past their time; returns how many of them still held load. */
  expire(): number {
    const now = this.clock.nowMs();
    let held = 0;
    for (const [id, e] of this.entries) {
      if (now > e.dispatchMs + this.ttlFactor * Math.max(e.pick.decodeDoneMs - e.dispatchMs, 1)) {
        if (e.prefillHeld || e.decodeHeld) held++;
        this.entries.delete(id);
      }
    }
    return held;
  }

  entriesOn(address: string): number {
    let n = 0;
    for (const e of this.entries.values()) if ((e.prefillHeld && e.pick.prefill === address) || (e.decodeHeld && e.pick.decode === address)) n++;
    return n;
  }

  podLoad(address: string): PodInflight {
    const load: PodInflight = { prefillRequests: 0, prefillTokens: 0, prefillMsAhead: 0, localPrefillMsAhead: 0, decodeRequests: 0, decodeTokens: 0 };
    const now = this.clock.nowMs();
    for (const e of this.entries.values()) {
      const local = e.pick.prefill === undefined;
      const prefillHere = local ? e.decodeHeld && e.pick.decode === address : e.prefillHeld && e.pick.prefill === address;
      if (prefillHere && now < e.pick.prefillDoneMs) {
        load.prefillRequests++;
        load.prefillTokens += e.pick.prefillTokens;
        load.prefillMsAhead += Math.min(e.pick.prefillComputeMs, e.pick.prefillDoneMs - now);
        if (local || e.pick.prefill === e.pick.decode) load.localPrefillMsAhead += Math.min(e.pick.prefillComputeMs, e.pick.prefillDoneMs - now);
      }
      if (e.decodeHeld && e.pick.decode === address) {
        load.decodeRequests++;
        load.decodeTokens += e.pick.kvTokens;
      }
    }
    return load;
  }
}

describe("the running sums against the rules recomputed from every entry", () => {
  const PODS = ["P:1", "P:2", "D:1", "D:2"];
  const HOUR_MS = 3_600_000;
  // Picks weigh more than the rest, so that dozens of entries are often in flight at once (the table
  // and its heaps grow past their first sizes).
  const op = fc.oneof(
    {
      weight: 4,
      arbitrary: fc.record({
        t: fc.constant("add" as const),
        id: fc.integer({ min: 0, max: 39 }),
        // Its own id, none (the table mints one), or a minted one brought back as its own.
        idFrom: fc.constantFrom("own" as const, "minted" as const, "reused" as const),
        prefill: fc.constantFrom("P:1", "P:2", undefined),
        decode: fc.constantFrom("D:1", "D:2"),
        tokens: fc.integer({ min: 1, max: 4000 }),
        prefillMs: fc.integer({ min: 0, max: 400 }),
        // Seconds, or hours: far past the fine slots' horizon.
        durationMs: fc.oneof({ weight: 3, arbitrary: fc.integer({ min: 0, max: 3000 }) }, fc.integer({ min: 0, max: 4 * HOUR_MS })),
      }),
    },
    fc.record({ t: fc.constant("report" as const), id: fc.integer({ min: 0, max: 39 }), minted: fc.boolean(), poolOnly: fc.boolean() }),
    fc.record({ t: fc.constant("scrape" as const), pod: fc.constantFrom(...PODS), lagMs: fc.integer({ min: 0, max: 300 }) }),
    // Steps within a fine slot, across the horizon, hours, and a jump of days (expire()'s long-gap path).
    fc.record({
      t: fc.constant("advance" as const),
      ms: fc.oneof(
        { weight: 4, arbitrary: fc.integer({ min: 0, max: 500 }) },
        fc.integer({ min: 0, max: 3 * COARSE_SLOT_MS }),
        fc.integer({ min: 0, max: 4 * HOUR_MS }),
        fc.integer({ min: 0, max: 1000 * HOUR_MS }),
      ),
    }),
    fc.record({ t: fc.constant("expire" as const) }),
    fc.record({ t: fc.constant("forget" as const), pod: fc.constantFrom(...PODS) }),
  );

  it("every pod's load equals the reference after any sequence of picks, reports, scrapes, expiries and departures", () => {
    fc.assert(
      fc.property(fc.array(op, { maxLength: 120, size: "max" }), (ops) => {
        const clock = new ManualClock(1000);
        // Room for 4 rows at first: a sequence grows the columns several times, keeping every row.
        const inflight = new InflightLoad({ clock, reflectDelayMs: 200, ttlFactor: 2, reserveRows: 4 });
        const reference = new Reference(clock, 200, 2);
        /** Every id the table minted, reported and expired ones too. */
        const minted: string[] = [];
        const idOf = (id: number, fromMinted: boolean) => (fromMinted && minted.length > 0 ? minted[id % minted.length] : `r${id}`);
        for (const o of ops) {
          const now = clock.nowMs();
          if (o.t === "add") {
            const p = pick(idOf(o.id, o.idFrom === "reused"), {
              prefill: o.prefill,
              decode: o.decode,
              prefillTokens: o.tokens * 0.7,
              prefillComputeMs: o.prefillMs / 2,
              kvTokens: o.tokens + 0.5,
              prefillDoneMs: now + o.prefillMs,
              decodeDoneMs: now + o.prefillMs + o.durationMs,
            });
            if (o.idFrom === "minted") {
              const { requestId: _, ...anonymous } = p;
              const id = inflight.add(anonymous);
              minted.push(id);
              reference.add({ ...p, requestId: id });
            } else {
              expect(inflight.add(p)).toBe(p.requestId);
              reference.add(p);
            }
          } else if (o.t === "report") {
            // A report returns the pick as it was recorded (or just its pool), once.
            const id = idOf(o.id, o.minted);
            const recorded = reference.entries.get(id)?.pick;
            if (o.poolOnly) expect(inflight.reportPool(id)).toBe(recorded?.pool);
            else expect(inflight.report(id)).toEqual(recorded);
            reference.report(id);
          } else if (o.t === "scrape") {
            inflight.onScrape(o.pod, now - o.lagMs);
            reference.release(o.pod, now - o.lagMs);
          } else if (o.t === "advance") clock.advance(o.ms);
          else if (o.t === "expire") {
            // Exactly the entries past their time go, those still holding load counted.
            expect(inflight.expire()).toBe(reference.expire());
            for (const id of reference.entries.keys()) expect(inflight.has(id), id).toBe(true);
          } else {
            inflight.forgetPod(o.pod);
            reference.release(o.pod, Infinity);
          }
          for (const pod of PODS) {
            const got = inflight.podLoad(pod);
            const want = reference.podLoad(pod);
            expect(got.prefillRequests, pod).toBe(want.prefillRequests);
            expect(got.decodeRequests, pod).toBe(want.decodeRequests);
            for (const key of ["prefillTokens", "prefillMsAhead", "decodeTokens"] as const) expect(got[key]).toBeCloseTo(want[key], 6);
            expect(inflight.entriesOn(pod), pod).toBe(reference.entriesOn(pod));
          }
          expect(inflight.size).toBe(reference.entries.size);
        }
      }),
      { numRuns: 300 },
    );
  });
});

describe("expiry on the timing wheel's two levels", () => {
  const HOUR_MS = 3_600_000;
  const op = fc.oneof(
    {
      weight: 4,
      arbitrary: fc.record({
        t: fc.constant("add" as const),
        // Within a fine slot, around the horizon, and hours past it.
        durationMs: fc.oneof(fc.double({ min: 0, max: 100, noNaN: true }), fc.double({ min: 0, max: 2 * EXPIRY_HORIZON_MS, noNaN: true }), fc.double({ min: 0, max: 6 * HOUR_MS, noNaN: true })),
      }),
    },
    fc.record({ t: fc.constant("report" as const), nth: fc.nat() }),
    // To just before, at and just after an entry's expiry, where a slot boundary may fall.
    fc.record({ t: fc.constant("toExpiry" as const), nth: fc.nat(), deltaMs: fc.constantFrom(-1, -0.25, 0, 0.25, 1, EXPIRY_SLOT_MS) }),
    fc.record({ t: fc.constant("advance" as const), ms: fc.oneof(fc.double({ min: 0, max: 2 * COARSE_SLOT_MS, noNaN: true }), fc.double({ min: 0, max: 1000 * HOUR_MS, noNaN: true })) }),
    fc.record({ t: fc.constant("expire" as const) }),
  );

  it("expire() drops exactly the entries whose expiresMs < now, on a fine slot or a coarse one, and keeps slots bounded", () => {
    fc.assert(
      fc.property(fc.oneof(fc.constant(0), fc.double({ min: 0, max: 1e12, noNaN: true })), fc.array(op, { maxLength: 150, size: "max" }), (startMs, ops) => {
        const clock = new ManualClock(startMs);
        const inflight = new InflightLoad({ clock, reflectDelayMs: 200, ttlFactor: 2, reserveRows: 4 });
        /** Live entries, in the order of their picks. */
        let live: { id: string; expiresMs: number }[] = [];
        let lastExpiresMs = -Infinity;
        let n = 0;
        for (const o of ops) {
          const now = clock.nowMs();
          if (o.t === "add") {
            const id = `r${n++}`;
            const decodeDoneMs = now + o.durationMs;
            inflight.add(pick(id, { prefill: undefined, prefillDoneMs: now, decodeDoneMs }));
            // As the table reckons it: (now + d) - now need not be d in doubles.
            const expiresMs = now + 2 * Math.max(decodeDoneMs - now, 1);
            live.push({ id, expiresMs });
            lastExpiresMs = Math.max(lastExpiresMs, expiresMs);
          } else if (o.t === "report") {
            if (live.length === 0) continue;
            const [gone] = live.splice(o.nth % live.length, 1);
            expect(inflight.report(gone!.id)).toBeDefined();
          } else if (o.t === "toExpiry") {
            if (live.length === 0) continue;
            clock.advanceTo(Math.max(now, live[o.nth % live.length]!.expiresMs + o.deltaMs));
          } else if (o.t === "advance") clock.advance(o.ms);
          else {
            const passed = live.filter((e) => e.expiresMs < now).length;
            expect(inflight.expire()).toBe(passed);
            live = live.filter((e) => e.expiresMs >= now);
            // Fine slots from now to the horizon and the span past it, coarse ones to the last expiry.
            const bound = (EXPIRY_HORIZON_MS + COARSE_SLOT_MS) / EXPIRY_SLOT_MS + 2 + Math.max(0, Math.ceil((lastExpiresMs - now) / COARSE_SLOT_MS)) + 1;
            expect(inflight.slotCount).toBeLessThanOrEqual(bound);
          }
          expect(inflight.size).toBe(live.length);
          for (const e of live) expect(inflight.has(e.id), e.id).toBe(true);
        }
      }),
      { numRuns: 300 },
    );
  });
});

describe("against real scrapes of a simulated prefill and decode pod", () => {
  it("decode pods' own counts plus the in-flight load never miss a request whose remote prefill is still running", async () => {
    const clock = new ManualClock(0);
    const profile = LatencyProfile.shipped(BUILTIN_PROFILE);
    const env: PodSimEnvironment = {
      host: "127.0.0.1",
      profile,
      model: "m",
      tpEfficiency: 0.9,
      gpuMemoryUtilization: 0.9,
      prefillTokenBudget: 8192,
      transferOverheadMs: 1,
      bandwidthGBps: 50,
      clock,
    };
    const p0 = new SimulatedPod({ name: "p0", role: "prefill" }, env);
    const d0 = new SimulatedPod({ name: "d0", role: "decode" }, env);
    await p0.listen();
    await d0.listen();
    const reflectDelayMs = 200;
    const inflight = new InflightLoad({ clock, reflectDelayMs, ttlFactor: 2 });
    let scraped = { waiting: 0, running: 0 };
    const scraper = new Scraper({
      clock,
      logger: silentLogger,
      registry: new Registry(),
      scrapeIntervalMs: 100,
      scrapeTimeoutMs: 5000,
      scrapeConcurrency: 1,
      targets: () => [{ address: d0.address, metricsUrl: d0.metricsUrl }],
      onOutcome: (address, outcome) => {
        if (!outcome.ok) throw new Error(outcome.message);
        scraped = outcome.metrics;
        inflight.onScrape(address, outcome.metrics.scrapedAtMs);
      },
    });
    try {
      // Six 16k-token prompts queue on p0 one after another (each is over the token budget); d0 gets
      // each only when its prefill has answered. The picks predict what the profile says.
      const tokens = 16_000;
      const prefillMs = profile.prefillMs(tokens);
      const transferMs = env.transferOverheadMs + (tokens * profile.hardware.kvBytesPerToken) / (env.bandwidthGBps * 1e6);
      for (let i = 0; i < 6; i++) {
        inflight.add(
          pick(`r${i}`, {
            prefill: p0.address,
            decode: d0.address,
            prefillDoneMs: (i + 1) * prefillMs,
            decodeDoneMs: 100_000,
            predicted: { prefillTtftMs: (i + 1) * prefillMs, decodeTtftMs: 5, transferMs, ttftMs: (i + 1) * prefillMs + transferMs + 5, tpotMs: 10 },
          }),
        );
        const body = JSON.stringify({ model: "m", prompt: "x".repeat(4 * tokens), max_tokens: 4000 });
        // Cut when the pods close, long before their 4,000 tokens.
        fetch(`http://${d0.address}/v1/completions`, { method: "POST", headers: { "content-type": "application/json", "x-prefiller-host-port": p0.address }, body })
          .then((r) => r.text())
          .catch(() => undefined);
      }
      const onPods = () => {
        const p = p0.gauges();
        const d = d0.gauges();
        return p.waiting + p.running + d.waiting + d.running;
      };
      await until(() => onPods() === 6, "six prompts on the prefill pod");
      let sawDecodeEmpty = false;
      for (let at = 50; at <= 6 * prefillMs + 600; at += 50) {
        clock.advanceTo(at);
        // A finished prefill's answer and the decode request it starts travel over real sockets.
        await until(() => onPods() === 6, `every request on p0 or d0 at ${at} ms`);
        await scraper.round();
        if (scraped.waiting + scraped.running === 0 && at > reflectDelayMs) sawDecodeEmpty = true;
        expect(scraped.waiting + scraped.running + inflight.podLoad(d0.address).decodeRequests, `at ${at} ms`).toBeGreaterThanOrEqual(6);
      }
      expect(sawDecodeEmpty).toBe(true);
      // Once d0 has them all and a late-enough scrape counts them, the in-flight load lets go.
      expect(scraped.waiting + scraped.running).toBe(6);
      expect(inflight.podLoad(d0.address).decodeRequests).toBe(0);
    } finally {
      await scraper.close();
      await d0.close();
      await p0.close();
    }
  });
});
