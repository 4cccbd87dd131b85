/** The ports' contract suites against the in-memory fakes (the same suites run against the real adapters in test/integration/contracts.test.ts). */
import { CONTRACT_OPTIONS, messageCacheContract } from "../contracts/message-cache.contract.ts";
import { repositoryContract } from "../contracts/repositories.contract.ts";
import { streamStoreContract } from "../contracts/stream-store.contract.ts";
import { FakeErasureRepository } from "../support/erasure-fakes.ts";
import {
  FakeConnectionRegistry,
  FakeHotTierEraser,
  FakeMessageCache,
  FakeMessageRepository,
  FakeStreamStore,
  FakeThreadRepository,
  ManualClock,
} from "../support/fakes.ts";

messageCacheContract("in-memory fake", async () => {
  const clock = new ManualClock(Date.now());
  const registry = new FakeConnectionRegistry();
  const cache = new FakeMessageCache(clock, registry, { ...CONTRACT_OPTIONS });
  return {
    cache,
    clock,
    options: CONTRACT_OPTIONS,
    registry,
    eraser: new FakeHotTierEraser(cache, registry),
    flush: async () => cache.flush(),
    close: async () => undefined,
  };
});

streamStoreContract("in-memory fake", async () => {
  const clock = new ManualClock(Date.now());
  const registry = new FakeConnectionRegistry();
  const cache = new FakeMessageCache(clock, registry, { ...CONTRACT_OPTIONS });
  const streams = new FakeStreamStore(clock, cache, registry);
  return {
    streams,
    cache,
    registry,
    clock,
    flush: async () => {
      cache.flush();
      streams.clear();
    },
    close: async () => undefined,
  };
});

repositoryContract("in-memory fakes", async () => {
  const threads = new FakeThreadRepository(new ManualClock(Date.now()));
  const messages = new FakeMessageRepository(threads);
  return {
    threads,
    messages,
    erasures: new FakeErasureRepository(threads, messages),
    close: async () => undefined,
  };
});
