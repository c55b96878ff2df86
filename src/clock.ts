// Time for the engine: pods, predictors, in-flight load and planners read the time and schedule work
// only through a Clock, so the same code runs in real time and in the simulator's virtual time.

import { performance } from "node:perf_hooks";

export type Cancel = () => void;

export interface Clock {
  /** Milliseconds on a monotonic scale (not wall time). */
  nowMs(): number;
  /** Runs fn once after delayMs (>= 0); the returned function cancels it if it has not run. */
  schedule(delayMs: number, fn: () => void): Cancel;
}

/** Runs fn every periodMs, first after one period, until cancelled; a period that fn overruns is not made up. */
export function every(clock: Clock, periodMs: number, fn: () => void): Cancel {
  let cancelled = false;
  let cancelNext: Cancel = () => {};
  const tick = () => {
    if (cancelled) return;
    cancelNext = clock.schedule(periodMs, tick);
    fn();
  };
  cancelNext = clock.schedule(periodMs, tick);
  return () => {
    cancelled = true;
    cancelNext();
  };
}

/** Real time: performance.now() and unref'd timers (a pending refresh never keeps the process alive). */
export const realClock: Clock = {
  nowMs: () => performance.now(),
  schedule(delayMs, fn) {
    const timer = setTimeout(fn, Math.max(0, delayMs));
    timer.unref();
    return () => clearTimeout(timer);
  },
};

/**
 * Real time for code that chains timers as a model of durations (the pod simulator): a timer never fires
 * before its deadline (Node rounds delays to whole milliseconds, so plain timers can fire early), and
 * inside a timer's callback the time is its deadline, so a chain of delays adds up exactly instead of
 * drifting by each callback's lateness. Monotonic: never earlier than a time it has returned.
 */
export class PacedClock implements Clock {
  private last = 0;
  private inside: number | null = null;

  nowMs(): number {
    this.last = Math.max(this.last, this.inside ?? performance.now());
    return this.last;
  }

  schedule(delayMs: number, fn: () => void): Cancel {
    const deadline = this.nowMs() + Math.max(0, delayMs);
    let timer: NodeJS.Timeout;
    const fire = () => {
      const early = deadline - performance.now();
      if (early > 0) {
        timer = setTimeout(fire, Math.ceil(early));
        return;
      }
      const outer = this.inside;
      this.inside = deadline;
      try {
        fn();
      } finally {
        this.inside = outer;
      }
    };
    // From real now to the deadline, not the whole delay: scheduled inside a late callback, whose time
    // is its deadline, the whole delay would add that lateness to the chain at every step (the pod
    // simulator ran 12-17 % slower than its profile while its reports said profile speed).
    timer = setTimeout(fire, Math.max(0, Math.ceil(deadline - performance.now())));
    return () => clearTimeout(timer);
  }
}

interface Timer {
  atMs: number;
  seq: number;
  fn: () => void;
}

/**
 * Virtual time that moves only when told to. Timers due at the same time run in the order they were
 * scheduled; a timer scheduled while advancing runs in the same advance if it falls due before its end.
 */
export class ManualClock implements Clock {
  private now: number;
  private seq = 0;
  // A binary heap ordered by (atMs, seq).
  private readonly heap: Timer[] = [];

  constructor(startMs = 0) {
    this.now = startMs;
  }

  nowMs(): number {
    return this.now;
  }

  schedule(delayMs: number, fn: () => void): Cancel {
    const timer: Timer = { atMs: this.now + Math.max(0, delayMs), seq: this.seq++, fn };
    this.push(timer);
    return () => {
      timer.fn = noop;
    };
  }

  /** Time of the next pending timer, or Infinity. Cancelled timers count until they are reached. */
  nextDueMs(): number {
    return this.heap.length > 0 ? this.heap[0]!.atMs : Infinity;
  }

  /** Moves time forward by deltaMs, running every timer that falls due on the way, in order. */
  advance(deltaMs: number): void {
    this.advanceTo(this.now + deltaMs);
  }

  advanceTo(targetMs: number): void {
    if (!(targetMs >= this.now)) throw new RangeError(`cannot move a clock back from ${this.now} to ${targetMs}`);
    while (this.heap.length > 0 && this.heap[0]!.atMs <= targetMs) {
      const timer = this.pop();
      this.now = timer.atMs;
      timer.fn();
    }
    this.now = targetMs;
  }

  private push(timer: Timer): void {
    const heap = this.heap;
    heap.push(timer);
    let i = heap.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!before(heap[i]!, heap[parent]!)) break;
      [heap[i], heap[parent]] = [heap[parent]!, heap[i]!];
      i = parent;
    }
  }

  private pop(): Timer {
    const heap = this.heap;
    const top = heap[0]!;
    const last = heap.pop()!;
    if (heap.length > 0) {
      heap[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < heap.length && before(heap[l]!, heap[m]!)) m = l;
        if (r < heap.length && before(heap[r]!, heap[m]!)) m = r;
        if (m === i) break;
        [heap[i], heap[m]] = [heap[m]!, heap[i]!];
        i = m;
      }
    }
    return top;
  }
}

function before(a: Timer, b: Timer): boolean {
  return a.atMs < b.atMs || (a.atMs === b.atMs && a.seq < b.seq);
}

function noop(): void {}
