import { killAllChildren } from "../host/children.js";

/**
 * Ctrl-C / SIGTERM during a long verb: stop every child (QEMU, swtpm) and return an
 * AbortSignal the verb passes down so it can clean up and exit 130.
 */
export function interruptSignal(): { signal: AbortSignal; dispose(): void } {
  const ac = new AbortController();
  let count = 0;
  const onSignal = () => {
    count++;
    ac.abort();
    if (count > 1) killAllChildren();
  };
  process.on("SIGINT", onSignal);
  process.on("SIGTERM", onSignal);
  return {
    signal: ac.signal,
    dispose: () => {
      process.off("SIGINT", onSignal);
      process.off("SIGTERM", onSignal);
    },
  };
}
