/**
 * EMF keeps at most 100 values per metric and document: a large batch is reported as 100 evenly
 * spaced quantiles of its values, which preserves its distribution.
 */
export const quantileSample = (values: readonly number[], max = 100): number[] => {
  if (values.length <= max) return [...values];
  const sorted = [...values].sort((a, b) => a - b);
  return Array.from(
    { length: max },
    (_, i) => sorted[Math.round((i * (sorted.length - 1)) / (max - 1))] as number,
  );
};
