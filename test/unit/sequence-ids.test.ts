import { describe, expect, it } from "vitest";
import {
  fingerprintOf,
  idempotencyKey,
  messageIdFor,
  newEpoch,
  newId,
  serverClientMessageId,
  tryToken,
} from "../../lambdas/core/ids.ts";
import {
  nextSeq,
  POSTGRES_SEQ_LANE,
  REDIS_SEQ_LANE,
  SEQ_PER_MILLISECOND,
  seqMillis,
  settledByTime,
  settledNow,
} from "../../lambdas/core/sequence.ts";
import { isUuid } from "../../lambdas/core/validation.ts";
import { makeMessage, makeThread } from "../support/fakes.ts";

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

  it("derives the id of a message keyed by the server from the server's key like any other", () => {
    const key = serverClientMessageId();
    expect(messageIdFor(T1, "alice", key)).toBe(messageIdFor(T1, "alice", key));
    expect(version(messageIdFor(T1, "alice", key))).toBe("5");
  });
});

describe("serverClientMessageId and idempotencyKey", () => {
  it("makes a new key for every message without one: srv: and a v7 UUID, a valid client_message_id", () => {
    const keys = Array.from({ length: 50 }, () => serverClientMessageId());
    expect(new Set(keys).size).toBe(50);
    for (const key of keys) {
      expect(key).toMatch(/^srv:/);
      expect(isUuid(key.slice(4))).toBe(true);
      expect(version(key.slice(4))).toBe("7");
      expect(key).toMatch(/^[A-Za-z0-9._:-]{1,128}$/);
    }
  });

  it("keys a message by its author and client id, which cannot be shifted into one another", () => {
    expect(idempotencyKey("alice", "c-1")).toBe("alice|c-1");
    expect(idempotencyKey("agent", "x:c1")).not.toBe(idempotencyKey("agent:x", "c1"));
  });
});

describe("fingerprintOf", () => {
  const base = { role: "user" as const, content: "hello", metadata: { a: 1 } };

  it("is the same for the same role, content and metadata, and short", () => {
    expect(fingerprintOf(base)).toBe(fingerprintOf({ ...base, metadata: { a: 1 } }));
    expect(fingerprintOf(base)).toMatch(/^[A-Za-z0-9_-]{22}$/);
    // Only those three count: a stored message has the fingerprint of the input it came from.
    const stored = makeMessage(makeThread("alice"), 5, base);
    expect(fingerprintOf(stored)).toBe(fingerprintOf(base));
  });

  it("differs when the role, the content or the metadata differ", () => {
    const prints = [
      fingerprintOf(base),
      fingerprintOf({ ...base, role: "assistant" }),
      fingerprintOf({ ...base, content: "hello!" }),
      fingerprintOf({ ...base, metadata: { a: 2 } }),
      fingerprintOf({ ...base, metadata: {} }),
    ];
    expect(new Set(prints).size).toBe(prints.length);
  });

  it("does not depend on the order of metadata keys (PostgreSQL's jsonb returns them in its own order)", () => {
    expect(fingerprintOf({ ...base, metadata: { zeta: 1, a: { y: 2, b: 3 } } })).toBe(
      fingerprintOf({ ...base, metadata: { a: { b: 3, y: 2 }, zeta: 1 } }),
    );
  });
});

describe("tryToken and newEpoch", () => {
  it("make distinct random tokens", () => {
    const tokens = new Set(Array.from({ length: 100 }, () => tryToken()));
    const epochs = new Set(Array.from({ length: 100 }, () => newEpoch()));
    expect(tokens.size).toBe(100);
    expect(epochs.size).toBe(100);
  });
});

describe("settledByTime and settledNow", () => {
  it("settles every seq allocated before the persist bound began", () => {
    // A seq allocated at ms t is at least t * 1000: all of ms NOW - bound - 1 and before are settled.
    expect(settledByTime(NOW, 60_000)).toBe((NOW - 60_000) * SEQ_PER_MILLISECOND - 1);
    expect(settledByTime(NOW, 60_000)).toBeLessThan(nextSeq(0, NOW - 60_000, REDIS_SEQ_LANE));
    expect(settledByTime(NOW, 60_000)).toBeGreaterThanOrEqual(nextSeq(0, NOW - 60_001, POSTGRES_SEQ_LANE));
  });

  it("never goes below zero", () => {
    expect(settledByTime(1000, 60_000)).toBe(0);
  });

  it("reads the clock at each call", () => {
    let now = NOW;
    const settled = settledNow({ now: () => now }, 1000);
    expect(settled()).toBe(settledByTime(NOW, 1000));
    now += 5;
    expect(settled()).toBe(settledByTime(NOW + 5, 1000));
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
