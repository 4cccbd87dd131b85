/** The error a promise (or function) fails with; fails the test when it does not fail. */
export const caught = async (work: Promise<unknown> | (() => unknown)): Promise<unknown> => {
  try {
    await (typeof work === "function" ? work() : work);
  } catch (error) {
    return error;
  }
  throw new Error("expected a failure, but it succeeded");
};
