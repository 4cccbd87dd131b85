/**
 * Builds on first use and keeps the result for the life of the process. A build that fails (a
 * secret fetch that timed out, say) is not kept: the next call tries again.
 */
export const once = <T>(build: () => T): (() => T) => {
  let value: { v: T } | undefined;
  return () => {
    if (value === undefined) {
      const v = build();
      value = { v };
      if (v instanceof Promise)
        v.catch(() => {
          if (value?.v === v) value = undefined;
        });
    }
    return value.v;
  };
};
