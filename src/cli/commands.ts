/**
 * The verb table. Each entry loads its module lazily; add one line per verb.
 * A module exports `run(argv) → exit status` and prints its own `--help`.
 */
export interface CommandModule {
  run(argv: string[]): Promise<number>;
}

export interface CommandEntry {
  readonly name: string;
  readonly summary: string;
  load(): Promise<CommandModule>;
}

export const commands: readonly CommandEntry[] = [];
