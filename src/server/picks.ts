// How the front end waits for picks: not at all when the engine can answer them inline, so the answer
// is written inside uWebSockets.js's corked callback, with the other answers of the same loop turn.

import type { EngineApi, PickAnswers, PickInput } from "../engine/types.js";

export function elapsedSeconds(startedMs: number): number {
  return (performance.now() - startedMs) / 1000;
}

/**
 * Calls `then` with the answers: at once when the engine picks them inline (and returns undefined),
 * otherwise when their batch is done, through the returned promise, which rejects with whatever `then`
 * threw.
 */
export function whenPicked(engine: EngineApi, inputs: readonly PickInput[], then: (answers: PickAnswers) => void): Promise<void> | undefined {
  const now = engine.pickNow(inputs);
  if (now === undefined) return engine.pick(inputs).then(then);
  then(now);
  return undefined;
}
