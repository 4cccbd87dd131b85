/**
 * The benchmark's latency proxies, in a process of their own (their CPU is reported apart from the
 * stack's): one TCP proxy per tier between the handlers and the local server, holding each
 * response for a delay drawn from the tier's profile (latency-profiles.ts). The failover scenarios
 * cut one (refused connections, open ones dropped: as a failover or a lost node looks to a client)
 * and restore it. Driven over IPC.
 */
import { monitorEventLoopDelay } from "node:perf_hooks";
import { TcpProxy } from "../../test/support/tcp-proxy.ts";
import { type ProxiedTier, responseDelay, type TierLatency } from "./latency-profiles.ts";
import { LOOP_RESOLUTION_MS, loopDelaySummary } from "./stats.ts";

export type ProxyWorkerMessage =
  | { type: "start"; proxies: { tier: ProxiedTier; targetPort: number; latency?: TierLatency }[] }
  | { type: "target"; tier: ProxiedTier; port: number }
  | { type: "cut"; tier: ProxiedTier }
  | { type: "restore"; tier: ProxiedTier }
  | { type: "stats" }
  | { type: "stop" };

export type ProxyWorkerReply =
  | { type: "started"; ports: Partial<Record<ProxiedTier, number>> }
  | { type: "cut" | "restored" | "targeted"; tier: ProxiedTier }
  | { type: "stats"; cpuMs: number; loopDelay: { p50: number; p99: number; max: number } }
  | { type: "stopped" };

const loopDelay = monitorEventLoopDelay({ resolution: LOOP_RESOLUTION_MS });
loopDelay.enable();
const proxies = new Map<ProxiedTier, TcpProxy>();
const send = (reply: ProxyWorkerReply): void => {
  process.send?.(reply);
};

process.once("disconnect", () => process.exit(1));

process.on("message", async (message: ProxyWorkerMessage) => {
  switch (message.type) {
    case "start": {
      for (const { tier, targetPort, latency } of message.proxies) {
        const proxy = await TcpProxy.start(0, targetPort);
        if (latency !== undefined) proxy.latency = { request: () => 0, response: responseDelay(latency) };
        proxies.set(tier, proxy);
      }
      send({ type: "started", ports: Object.fromEntries([...proxies].map(([t, p]) => [t, p.port])) });
      loopDelay.reset();
      break;
    }
    case "target": {
      const proxy = proxies.get(message.tier);
      if (proxy !== undefined) proxy.targetPort = message.port;
      send({ type: "targeted", tier: message.tier });
      break;
    }
    case "cut":
      await proxies.get(message.tier)?.cut();
      send({ type: "cut", tier: message.tier });
      break;
    case "restore":
      await proxies.get(message.tier)?.restore();
      send({ type: "restored", tier: message.tier });
      break;
    case "stats": {
      const cpu = process.cpuUsage();
      send({ type: "stats", cpuMs: (cpu.user + cpu.system) / 1000, loopDelay: loopDelaySummary(loopDelay) });
      loopDelay.reset();
      break;
    }
    case "stop":
      for (const proxy of proxies.values()) await proxy.cut();
      send({ type: "stopped" });
      process.exit(0);
  }
});
