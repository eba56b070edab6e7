/**
 * The registered baselines as a TPM attestation judges them: parsed once per revision of the
 * baselines table (migrations.ts v6 — the database bumps the revision on every change, whoever
 * makes it), not read and parsed on every attestation. One set per HGS context.
 *
 * Each call reads the revision (one indexed row); when it is the one the held list was read at,
 * the held list is the table's content. Otherwise the rows are read again — after the revision,
 * so a change committed between the two reads leaves the list labelled with the older revision
 * and the next call reads again (never the reverse, a stale list under a newer label). Parsing is
 * memoised by the row's body text (content), so a change re-parses only new baselines.
 */
import { BoundedMap } from "../core/memo.js";
import { parseBaseline, type Baseline } from "../attest/baseline.js";
import type { Tables } from "./store/repo.js";

/** More baselines than any fabric registers; beyond it, bodies are parsed again per read. */
const MAX_PARSED = 4096;

export class BaselineSet {
  private held: { readonly revision: string; readonly baselines: readonly Baseline[] } | undefined;
  private readonly parsed = new BoundedMap<string, Baseline>(MAX_PARSED);

  constructor(private readonly repo: Tables) {}

  /** The baselines registered now, in registration order (as {@link Tables.baselines}). */
  async current(): Promise<readonly Baseline[]> {
    const revision = await this.repo.baselinesRevision();
    if (revision !== undefined && this.held?.revision === revision) return this.held.baselines;
    const baselines = (await this.repo.baselines()).map((r) => this.parse(r.body));
    if (revision !== undefined) this.held = { revision, baselines };
    return baselines;
  }

  private parse(body: string): Baseline {
    let b = this.parsed.get(body);
    if (!b) {
      b = parseBaseline(body);
      this.parsed.set(body, b);
    }
    return b;
  }
}
