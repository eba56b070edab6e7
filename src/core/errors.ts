/**
 * One error hierarchy with stable codes (STYLE.md habit 6).
 *
 * Each domain declares its codes once with {@link defineErrors}; the full catalogue
 * (src/catalogue.ts) gathers them, and a test keeps docs/errors.md in sync with it.
 * CLI exit codes and HTTP statuses come from the catalogue, never from call sites.
 */

export interface ErrorSpec {
  /** One sentence a user can act on; shown in docs/errors.md. */
  readonly summary: string;
  /** Process exit status the CLI uses for this code. */
  readonly exit: ExitStatus;
  /** HTTP status the services answer with for this code. */
  readonly http: number;
}

/** Exit statuses shared by every command (documented in docs/errors.md). */
export const Exit = {
  ok: 0,
  failure: 1,
  usage: 2,
  notFound: 3,
  refused: 4,
  invalidInput: 5,
  conflict: 6,
  missingDependency: 7,
  externalFailure: 8,
  io: 9,
  interrupted: 130,
} as const;
export type ExitStatus = (typeof Exit)[keyof typeof Exit];

export type ErrorCatalogue = Readonly<Record<string, ErrorSpec>>;

/** Declares a domain's codes; every code must start with `<PREFIX>_ERR_`. */
export function defineErrors<const T extends Record<string, ErrorSpec>>(prefix: string, specs: T): T {
  for (const code of Object.keys(specs)) {
    if (!code.startsWith(`${prefix}_ERR_`)) {
      throw new TypeError(`error code ${code} does not start with ${prefix}_ERR_`);
    }
  }
  return Object.freeze(specs);
}

export interface ErrorDetails {
  /** Byte offset in the input where decoding failed. */
  readonly offset?: number;
  /** Structure path, e.g. `TPMT_PUBLIC.parameters.keyBits`. */
  readonly path?: string;
  /** Any further machine-readable facts (never secrets). */
  readonly [key: string]: unknown;
}

/** Base class of every error Bulwark raises on purpose. */
export class BulwarkError<C extends string = string> extends Error {
  readonly code: C;
  readonly details: ErrorDetails;

  constructor(code: C, message: string, details: ErrorDetails = {}, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "BulwarkError";
    this.code = code;
    this.details = details;
  }

  toJSON(): { code: C; message: string; details: ErrorDetails } {
    return { code: this.code, message: this.message, details: this.details };
  }
}

export function isBulwarkError(e: unknown): e is BulwarkError {
  return e instanceof BulwarkError;
}

export const CoreErrors = defineErrors("CORE", {
  CORE_ERR_TRUNCATED: {
    summary: "Input ended before a structure was complete.",
    exit: Exit.invalidInput,
    http: 400,
  },
  CORE_ERR_LIMIT: {
    summary: "A count or length in the input exceeds the limit for that field.",
    exit: Exit.invalidInput,
    http: 400,
  },
  CORE_ERR_INVALID: {
    summary: "A field holds a value that the format does not allow.",
    exit: Exit.invalidInput,
    http: 400,
  },
  CORE_ERR_TRAILING: {
    summary: "Input has bytes left over after a complete structure.",
    exit: Exit.invalidInput,
    http: 400,
  },
  CORE_ERR_INTERNAL: {
    summary: "An unexpected internal failure; please report it with the command that caused it.",
    exit: Exit.failure,
    http: 500,
  },
});
export type CoreErrorCode = keyof typeof CoreErrors;

export class DecodeError extends BulwarkError<CoreErrorCode> {
  constructor(code: CoreErrorCode, message: string, details: ErrorDetails) {
    super(code, message, details);
    this.name = "DecodeError";
  }
}

/**
 * One typed error factory per domain: `const hostError = errorFactory(HostErrors, "HostError")`
 * then `throw hostError("HOST_ERR_X", "sentence", { details })`. The code is checked by the
 * compiler against the domain's declared codes, so no call site can raise an undeclared code.
 */
export function errorFactory<const T extends ErrorCatalogue>(
  _specs: T,
  name: string,
): (
  code: keyof T & string,
  message: string,
  details?: ErrorDetails,
  options?: { cause?: unknown },
) => BulwarkError<keyof T & string> {
  return (code, message, details = {}, options) => {
    const e = new BulwarkError(code, message, details, options);
    e.name = name;
    return e;
  };
}

/**
 * The `instanceof` of a factory-made domain: true for a {@link BulwarkError} carrying one of the
 * domain's declared codes (`const isHostError = errorGuard(HostErrors)`).
 */
export function errorGuard<const T extends ErrorCatalogue>(
  specs: T,
): (e: unknown) => e is BulwarkError<keyof T & string> {
  return (e): e is BulwarkError<keyof T & string> =>
    e instanceof BulwarkError && Object.hasOwn(specs, e.code);
}
