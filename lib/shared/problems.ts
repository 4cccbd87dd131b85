/**
 * Collects every problem with a set of props, so synth fails once with all of them rather than
 * with the first one found.
 */
export class ConfigurationError extends Error {
  override readonly name = "ConfigurationError";
  constructor(
    readonly subject: string,
    readonly problems: readonly string[],
  ) {
    super(
      `Invalid ${subject} (${problems.length} problem${problems.length === 1 ? "" : "s"}):\n${problems.map((p) => `  - ${p}`).join("\n")}`,
    );
  }
}

export class Problems {
  private readonly found: string[] = [];

  constructor(private readonly prefix = "") {}

  /** Records `message` unless `ok`. */
  check(ok: boolean, message: string): this {
    if (!ok) this.found.push(`${this.prefix}${message}`);
    return this;
  }

  /** `value` is an integer in [min, max]. */
  integer(path: string, value: number, min: number, max: number): this {
    return this.check(
      Number.isInteger(value) && value >= min && value <= max,
      `${path} must be an integer from ${min} to ${max} (got ${value})`,
    );
  }

  /** `value` is a number in [min, max]. */
  range(path: string, value: number, min: number, max: number): this {
    return this.check(
      Number.isFinite(value) && value >= min && value <= max,
      `${path} must be from ${min} to ${max} (got ${value})`,
    );
  }

  /** Adds problems found by another collector (or a list). */
  add(problems: readonly string[]): this {
    for (const p of problems) this.found.push(`${this.prefix}${p}`);
    return this;
  }

  get list(): readonly string[] {
    return this.found;
  }

  /** Throws one ConfigurationError listing every problem, if there is any. */
  throwIfAny(subject: string): void {
    if (this.found.length > 0) throw new ConfigurationError(subject, this.found);
  }
}
