/**
 * One home for "try, and if it fails, say so and carry on": a step whose failure the core absorbs
 * (a cache write, a warm-up, a cleanup). The failure is reported through Diagnostics with the
 * step's name and attributes; the caller gets `fallback`.
 */
import { describeError } from "./errors.ts";
import type { Diagnostics } from "./ports.ts";

export const bestEffort = async <T>(
  diagnostics: Diagnostics,
  what: string,
  attributes: Record<string, unknown>,
  work: () => Promise<T>,
  fallback: T,
): Promise<T> => {
  try {
    return await work();
  } catch (error) {
    diagnostics.warn(what, { ...attributes, error: describeError(error) });
    return fallback;
  }
};
