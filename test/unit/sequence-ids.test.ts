import { describe, expect, it } from "vitest";
import { messageIdFor, newId } from "../../lambdas/core/ids.ts";
import {
  nextSeq,
  POSTGRES_SEQ_LANE,
  REDIS_SEQ_LANE,
  SEQ_PER_MILLISECOND,
  seqMillis,
} from "../../lambdas/core/sequence.ts";
import { isUuid } from "../../lambdas/core/validation.ts";

const NOW = 1_750_000_000_000;
const T1 = "0196a0b0-1c2d-7e3f-8a4b-5c6d7e8f9a0b";
const T2 = "0196a0b0-1c2d-7e3f-8a4b-5c6d7e8f9a0c";

const version = (uuid: string): string => uuid.charAt(14);

describe("nextSeq", () => {
  it("starts a millisecond's seqs at now * 1000 plus the tier's lane", () => {
    expect(nextSeq(0, NOW, REDIS_SEQ_LANE)).toBe(NOW * SEQ_PER_MILLISECOND);
    expect(nextSeq(0, NOW, POSTGRES_SEQ_LANE)).toBe(NOW * SEQ_PER_MILLISECOND + 500);
  });

  it("counts up by one within a millisecond, and when the clock goes backwards", () => {
    const first = nextSeq(0, NOW, REDIS_SEQ_LANE);
    expect(nextSeq(first, NOW, REDIS_SEQ_LANE)).toBe(first + 1);
    expect(nextSeq(first, NOW - 10, REDIS_SEQ_LANE)).toBe(first + 1);
  });

  it("jumps to the clock when it is ahead of the last seq", () => {
    expect(nextSeq(NOW * 1000 + 3, NOW + 1, REDIS_SEQ_LANE)).toBe((NOW + 1) * 1000);
  });

  it("never reuses a seq after the hot tier forgot its counter, once the clock has moved on", () => {
    const before = nextSeq(nextSeq(0, NOW, REDIS_SEQ_LANE), NOW, REDIS_SEQ_LANE);
    expect(nextSeq(0, NOW + 1, REDIS_SEQ_LANE)).toBeGreaterThan(before);
  });

  it("keeps the two tiers' seqs apart within one millisecond", () => {
    expect(nextSeq(0, NOW, REDIS_SEQ_LANE)).not.toBe(nextSeq(0, NOW, POSTGRES_SEQ_LANE));
  });

  it("stays an exact JSON number", () => {
    expect(Number.isSafeInteger(nextSeq(0, NOW, POSTGRES_SEQ_LANE))).toBe(true);
  });

  it("gives back the millisecond a seq was allocated in", () => {
    expect(seqMillis(nextSeq(0, NOW, POSTGRES_SEQ_LANE))).toBe(NOW);
    expect(seqMillis(nextSeq(0, NOW, REDIS_SEQ_LANE) + 42)).toBe(NOW);
  });
});

describe("messageIdFor", () => {
  it("derives the same UUID (v5) for the same thread, author and client id", () => {
    const id = messageIdFor(T1, "alice", "c-1");
    expect(messageIdFor(T1, "alice", "c-1")).toBe(id);
    expect(isUuid(id)).toBe(true);
    expect(version(id)).toBe("5");
  });

  it("derives distinct ids when the thread, the author or the client id differs", () => {
    const ids = [
      messageIdFor(T1, "alice", "c-1"),
      messageIdFor(T2, "alice", "c-1"),
      messageIdFor(T1, "bob", "c-1"),
      messageIdFor(T1, "alice", "c-2"),
      // The parts cannot be shifted into one another.
      messageIdFor(T1, "alice:c", "1"),
      messageIdFor(T1, "alice", "c:1"),
    ];
    expect(new Set(ids).size).toBe(ids.length);
  });

  it("makes a random time-ordered id (v7) when there is no client id", () => {
    const a = messageIdFor(T1, "alice", undefined);
    const b = messageIdFor(T1, "alice", undefined);
    expect(a).not.toBe(b);
    expect(version(a)).toBe("7");
  });
});

describe("newId", () => {
  it("makes distinct v7 UUIDs", () => {
    const ids = Array.from({ length: 100 }, () => newId());
    expect(new Set(ids).size).toBe(100);
    for (const id of ids) {
      expect(isUuid(id)).toBe(true);
      expect(version(id)).toBe("7");
    }
  });
});
