/**
 * What an environment costs per month when nobody uses it, computed from its synthesized
 * CloudFormation templates and the one prices file (prices.json). Only resources that bill by the
 * hour (or month) whatever the traffic are counted; everything billed per request, per GB or per
 * invocation is zero at idle and listed in docs/deploy.md instead. The scheduled outbox relay is
 * the exception: it runs at idle, so its invocations (and the database wake-ups they cause when
 * Aurora may pause) are counted too.
 *
 * `npm run cost:idle` prints the tables; `npm run cost:idle -- --write` puts them into
 * docs/deploy.md, and test/infra/idle-cost.test.ts fails when the document is out of date.
 */
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { App } from "aws-cdk-lib";
import { createChatPipeline, stackName } from "../../lib/chat-pipeline.ts";
import type { EnvironmentConfig } from "../../lib/config/types.ts";

// biome-ignore lint/suspicious/noExplicitAny: CloudFormation JSON is untyped
type Json = any;

export interface Price {
  readonly usd: number;
  readonly unit: string;
  readonly source: string;
}

export interface PriceList {
  readonly region: string;
  readonly compiled: string;
  readonly hoursPerMonth: number;
  readonly prices: Readonly<Record<string, Price | (Omit<Price, "usd"> & { usd: Record<string, number> })>>;
  readonly assumptions: {
    readonly natInstanceRootVolumeGb: number;
    readonly scheduledRunBilledSeconds: number;
    readonly auroraAwakeAcu: number;
  };
}

export const REPO_ROOT = join(import.meta.dirname, "..", "..");
export const PRICES_FILE = join(REPO_ROOT, "scripts", "cost", "prices.json");

export const loadPrices = (file = PRICES_FILE): PriceList =>
  JSON.parse(readFileSync(file, "utf8")) as PriceList;

export interface Templates {
  readonly network: Json;
  readonly data: Json;
  readonly app: Json;
}

/** The three templates of `config`, synthesized as `cdk synth` does, without bundling the functions. */
export const synthesizeTemplates = (config: EnvironmentConfig): Templates => {
  const json = (file: string): Record<string, unknown> =>
    JSON.parse(readFileSync(join(REPO_ROOT, file), "utf8")) as Record<string, unknown>;
  const outdir = mkdtempSync(join(tmpdir(), "idle-cost-"));
  try {
    const app = new App({
      outdir,
      context: {
        ...((json("cdk.json").context ?? {}) as Record<string, unknown>),
        ...json("cdk.context.json"),
        "aws:cdk:bundling-stacks": [],
      },
      builtinCloudFormationValidation: false,
    });
    createChatPipeline(app, config);
    const assembly = app.synth();
    const template = (part: "Network" | "Data" | "App") =>
      assembly.getStackByName(stackName(config, part)).template as Json;
    return { network: template("Network"), data: template("Data"), app: template("App") };
  } finally {
    rmSync(outdir, { recursive: true, force: true });
  }
};

export interface CostLine {
  /** What is billed, as it appears in the templates. */
  readonly item: string;
  /** How many, and for how long. */
  readonly quantity: string;
  /** The unit price used (from prices.json). */
  readonly price: string;
  readonly usdPerMonth: number;
}

const resourcesOf = (template: Json, type: string): [string, Json][] =>
  Object.entries((template.Resources ?? {}) as Record<string, Json>).filter(([, r]) => r.Type === type);

const refId = (value: Json): string | undefined =>
  value?.Ref ?? (Array.isArray(value?.["Fn::GetAtt"]) ? value["Fn::GetAtt"][0] : undefined);

/** A number without trailing zeros ("2.50" → "2.5", "730.0" → "730"). */
const trim = (s: string): string => (s.includes(".") ? s.replace(/0+$/, "").replace(/\.$/, "") : s);
/** A unit price as written in prices.json, with at least two decimals ("$0.40", "$0.0000133334"). */
const money = (n: number): string => {
  const digits = trim(n.toFixed(10));
  const decimals = digits.split(".")[1]?.length ?? 0;
  return `$${decimals >= 2 ? digits : n.toFixed(2)}`;
};

/** "rate(5 minutes)" → runs per month; undefined for anything else (cron). */
export const runsPerMonth = (expression: string, hoursPerMonth: number): number | undefined => {
  const m = /^rate\((\d+) (minute|minutes|hour|hours|day|days)\)$/.exec(expression);
  if (m === null) return undefined;
  const every = Number(m[1]);
  const minutes = m[2]?.startsWith("minute") ? every : m[2]?.startsWith("hour") ? every * 60 : every * 1440;
  return (hoursPerMonth * 60) / minutes;
};

/** The resources of a type in all three templates, and a price by its key (a flat one). */
export const pricing = (templates: Templates, prices: PriceList) => {
  const all = [templates.network, templates.data, templates.app];
  return {
    of: (type: string) => all.flatMap((t) => resourcesOf(t, type)),
    price: (key: string): Price => {
      const p = prices.prices[key];
      if (p === undefined || typeof p.usd !== "number") throw new Error(`prices.json has no price "${key}"`);
      return p as Price;
    },
  };
};

export const idleCost = (templates: Templates, prices: PriceList): CostLine[] => {
  const { of, price } = pricing(templates, prices);
  const hours = prices.hoursPerMonth;
  const lines: CostLine[] = [];
  const hourly = (item: string, count: number, key: string, label = "h") => {
    if (count === 0) return;
    const p = price(key);
    lines.push({
      item,
      quantity: `${trim(count.toFixed(2))} × ${hours} ${label}`,
      price: `${money(p.usd)}/${label}`,
      usdPerMonth: count * hours * p.usd,
    });
  };
  const monthly = (item: string, count: number, key: string, what: string) => {
    if (count === 0) return;
    const p = price(key);
    lines.push({
      item,
      quantity: `${count} ${what}${count === 1 ? "" : "s"}`,
      price: `${money(p.usd)}/${what}-month`,
      usdPerMonth: count * p.usd,
    });
  };

  // ---------------------------------------------------------------- egress
  const natGateways = of("AWS::EC2::NatGateway").filter(
    ([, r]) => r.Properties?.ConnectivityType !== "private",
  );
  hourly("NAT gateway (AWS::EC2::NatGateway)", natGateways.length, "natGatewayHour");
  const natInstances = of("AWS::EC2::Instance").filter(([, r]) => r.Properties?.SourceDestCheck === false);
  const instancePrices = prices.prices.ec2InstanceHour;
  for (const [type, count] of countBy(natInstances.map(([, r]) => String(r.Properties?.InstanceType)))) {
    const perHour = (instancePrices?.usd as Record<string, number> | undefined)?.[type];
    if (perHour === undefined) throw new Error(`prices.json has no ec2InstanceHour price for ${type}`);
    lines.push({
      item: `NAT instance ${type} (AWS::EC2::Instance)`,
      quantity: `${count} × ${hours} h`,
      price: `${money(perHour)}/h`,
      usdPerMonth: count * hours * perHour,
    });
    const gb = prices.assumptions.natInstanceRootVolumeGb;
    const ebs = price("ebsGp3GbMonth");
    lines.push({
      item: `NAT instance root volume (gp3, ${gb} GB of the AMI)`,
      quantity: `${count * gb} GB`,
      price: `${money(ebs.usd)}/GB-month`,
      usdPerMonth: count * gb * ebs.usd,
    });
  }
  // Every NAT device has exactly one public IPv4 address (created here or pre-allocated).
  hourly(
    "Public IPv4 address of each NAT device",
    natGateways.length + natInstances.length,
    "publicIpv4Hour",
  );

  const interfaceAzs = of("AWS::EC2::VPCEndpoint")
    .filter(([, r]) => r.Properties?.VpcEndpointType === "Interface")
    .map(([, r]) => ({
      service: endpointService(r.Properties?.ServiceName),
      azs: r.Properties?.SubnetIds?.length ?? 0,
    }));
  if (interfaceAzs.length > 0) {
    const total = interfaceAzs.reduce((n, e) => n + e.azs, 0);
    const p = price("interfaceEndpointAzHour");
    lines.push({
      item: `Interface VPC endpoints (${interfaceAzs.map((e) => `${e.service} × ${e.azs} AZ`).join(", ")})`,
      quantity: `${total} × ${hours} h`,
      price: `${money(p.usd)}/AZ-h`,
      usdPerMonth: total * hours * p.usd,
    });
  }

  // ---------------------------------------------------------------- PostgreSQL
  const clusters = new Map(of("AWS::RDS::DBCluster"));
  const parameterGroups = new Map(of("AWS::RDS::DBClusterParameterGroup"));
  const instancesOf = (clusterId: string) =>
    of("AWS::RDS::DBInstance").filter(
      ([, r]) =>
        refId(r.Properties?.DBClusterIdentifier) === clusterId &&
        r.Properties?.DBInstanceClass === "db.serverless",
    );
  let clusterMinAcu = 0;
  let pausable: { pauseAfterSeconds: number; idleSessionSeconds: number | undefined } | undefined;
  for (const [clusterId, cluster] of clusters) {
    const scaling = cluster.Properties?.ServerlessV2ScalingConfiguration ?? {};
    const min = Number(scaling.MinCapacity ?? 0.5);
    const instances = instancesOf(clusterId).length;
    clusterMinAcu += min * instances;
    if (min > 0) {
      lines.push({
        item: `Aurora Serverless v2 at its minimum (${instances} instance${instances === 1 ? "" : "s"} × ${min} ACU)`,
        quantity: `${trim((min * instances).toFixed(2))} ACU × ${hours} h`,
        price: `${money(price("auroraServerlessV2AcuHour").usd)}/ACU-h`,
        usdPerMonth: min * instances * hours * price("auroraServerlessV2AcuHour").usd,
      });
    } else {
      const group = parameterGroups.get(refId(cluster.Properties?.DBClusterParameterGroupName) ?? "");
      const idleMs = group?.Properties?.Parameters?.idle_session_timeout;
      pausable = {
        pauseAfterSeconds: Number(scaling.SecondsUntilAutoPause ?? 86_400),
        idleSessionSeconds: idleMs === undefined ? undefined : Number(idleMs) / 1000,
      };
    }
  }
  for (const _proxy of of("AWS::RDS::DBProxy")) {
    const p = price("rdsProxyServerlessAcuHour");
    const billed = Math.max(8, clusterMinAcu);
    lines.push({
      item: `RDS Proxy (billed on max(8, ${trim(clusterMinAcu.toFixed(2))}) ACUs of the cluster)`,
      quantity: `${billed} ACU × ${hours} h`,
      price: `${money(p.usd)}/ACU-h`,
      usdPerMonth: billed * hours * p.usd,
    });
  }

  // ---------------------------------------------------------------- scheduled work at idle
  const functions = new Map(of("AWS::Lambda::Function"));
  for (const [, rule] of of("AWS::Events::Rule")) {
    const expression = rule.Properties?.ScheduleExpression;
    if (typeof expression !== "string" || rule.Properties?.State === "DISABLED") continue;
    const runs = runsPerMonth(expression, hours);
    if (runs === undefined) throw new Error(`unsupported schedule ${expression}`);
    for (const target of (rule.Properties?.Targets ?? []) as Json[]) {
      const fn = functions.get(refId(target.Arn) ?? "");
      if (fn === undefined) continue;
      const gb = Number(fn.Properties?.MemorySize ?? 128) / 1024;
      const seconds = prices.assumptions.scheduledRunBilledSeconds;
      const perRun = price("lambdaRequest").usd + gb * seconds * price("lambdaArmGbSecond").usd;
      lines.push({
        item: `${fn.Properties?.Description ?? "Scheduled function"}: ${expression}`,
        quantity: `${trim(runs.toFixed(1))} runs × ${seconds} s × ${trim(gb.toFixed(3))} GB`,
        price: `${money(price("lambdaRequest").usd)}/request + ${money(price("lambdaArmGbSecond").usd)}/GB-s`,
        usdPerMonth: runs * perRun,
      });
      // A run that reaches PostgreSQL resumes a paused cluster, which then stays up until its
      // last connection has been idle long enough to be closed, plus the auto-pause delay.
      const usesDatabase = fn.Properties?.Environment?.Variables?.DATABASE_SECRET_ARN !== undefined;
      if (usesDatabase && pausable !== undefined) {
        const acu = prices.assumptions.auroraAwakeAcu;
        const awakePerRun =
          pausable.idleSessionSeconds === undefined
            ? Number.POSITIVE_INFINITY
            : pausable.idleSessionSeconds + pausable.pauseAfterSeconds;
        const intervalSeconds = (hours * 3600) / runs;
        const awakeHours = awakePerRun >= intervalSeconds ? hours : (runs * awakePerRun) / 3600;
        lines.push({
          item: "Aurora woken by that schedule (idle session timeout + auto-pause delay per run)",
          quantity: `${trim(awakeHours.toFixed(1))} h × ${acu} ACU`,
          price: `${money(price("auroraServerlessV2AcuHour").usd)}/ACU-h`,
          usdPerMonth: awakeHours * acu * price("auroraServerlessV2AcuHour").usd,
        });
      }
    }
  }

  // ---------------------------------------------------------------- cache
  for (const [, cache] of of("AWS::ElastiCache::ServerlessCache")) {
    const valkey = cache.Properties?.Engine === "valkey";
    const p = price(valkey ? "elastiCacheServerlessValkeyGbHour" : "elastiCacheServerlessRedisGbHour");
    const minGb = valkey ? 0.1 : 1;
    lines.push({
      item: `ElastiCache Serverless (${valkey ? "Valkey" : "Redis OSS"}), minimum billed storage`,
      quantity: `${minGb} GB × ${hours} h`,
      price: `${money(p.usd)}/GB-h`,
      usdPerMonth: minGb * hours * p.usd,
    });
  }

  // ---------------------------------------------------------------- secrets and keys
  const ownSecrets = of("AWS::SecretsManager::Secret").length;
  // Secrets created beforehand and named by the functions (e.g. the ClickHouse secret).
  const namedSecrets = new Set<string>();
  for (const [, fn] of functions) {
    for (const [name, value] of Object.entries(
      (fn.Properties?.Environment?.Variables ?? {}) as Record<string, Json>,
    )) {
      if (name.endsWith("_SECRET_ARN") && typeof value === "string") namedSecrets.add(value);
    }
  }
  monthly("Secrets Manager secrets (stacks)", ownSecrets, "secretsManagerSecretMonth", "secret");
  monthly(
    `Secrets Manager secrets created beforehand (${[...namedSecrets].sort().join(", ")})`,
    namedSecrets.size,
    "secretsManagerSecretMonth",
    "secret",
  );
  monthly("KMS customer managed keys", of("AWS::KMS::Key").length, "kmsKeyMonth", "key");

  // ---------------------------------------------------------------- monitoring
  let standard = 0;
  let highResolution = 0;
  const alarms = of("AWS::CloudWatch::Alarm");
  for (const [, alarm] of alarms) {
    const props = alarm.Properties ?? {};
    const stats = ((props.Metrics ?? []) as Json[]).filter((m) => m.MetricStat !== undefined);
    const metrics = props.MetricName !== undefined ? 1 : stats.length;
    const period = Number(props.Period ?? stats[0]?.MetricStat?.Period ?? 60);
    if (period < 60) highResolution += metrics;
    else standard += metrics;
  }
  if (alarms.length > 0) {
    const p = price("cloudWatchAlarmMetricMonth");
    lines.push({
      item: `CloudWatch alarms (${alarms.length} alarms)`,
      quantity: `${standard} metrics`,
      price: `${money(p.usd)}/metric-month`,
      usdPerMonth: standard * p.usd,
    });
    if (highResolution > 0) {
      const h = price("cloudWatchHighResolutionAlarmMetricMonth");
      lines.push({
        item: "CloudWatch high-resolution alarm metrics",
        quantity: `${highResolution} metrics`,
        price: `${money(h.usd)}/metric-month`,
        usdPerMonth: highResolution * h.usd,
      });
    }
  }
  monthly(
    "CloudWatch dashboards",
    of("AWS::CloudWatch::Dashboard").length,
    "cloudWatchDashboardMonth",
    "dashboard",
  );
  return lines;
};

const countBy = (values: readonly string[]): [string, number][] => {
  const counts = new Map<string, number>();
  for (const v of values) counts.set(v, (counts.get(v) ?? 0) + 1);
  return [...counts];
};

/** "com.amazonaws.us-east-1.sqs" (or its Fn::Join with the region) → "sqs"; a PrivateLink service → its name. */
const endpointService = (name: Json): string => {
  const text =
    typeof name === "string"
      ? name
      : ((name?.["Fn::Join"]?.[1] as Json[] | undefined) ?? []).filter((p) => typeof p === "string").join("");
  if (text.includes("vpce-svc")) return "PrivateLink service";
  return text.split(".").at(-1) || "endpoint";
};

export const total = (lines: readonly CostLine[]): number => lines.reduce((n, l) => n + l.usdPerMonth, 0);

/** The Markdown table docs/deploy.md carries for one environment. */
export const renderTable = (lines: readonly CostLine[]): string => {
  const rows = lines.map((l) => `| ${l.item} | ${l.quantity} | ${l.price} | ${l.usdPerMonth.toFixed(2)} |`);
  return [
    "| Billed at idle (from the synthesized templates) | Quantity | Price | USD/month |",
    "| --- | --- | --- | ---: |",
    ...rows,
    `| **Total** | | | **${total(lines).toFixed(2)}** |`,
  ].join("\n");
};

export const blockMarkers = (env: string) => ({
  start: `<!-- idle-cost:${env}:start (generated by npm run cost:idle -- --write; do not edit) -->`,
  end: `<!-- idle-cost:${env}:end -->`,
});

/** The generated block of `env` in `document`, without its markers, or undefined. */
export const documentedBlock = (document: string, env: string): string | undefined => {
  const { start, end } = blockMarkers(env);
  const from = document.indexOf(start);
  const to = document.indexOf(end);
  if (from < 0 || to < from) return undefined;
  return document.slice(from + start.length, to).trim();
};

export const replaceBlock = (document: string, env: string, content: string): string => {
  const { start, end } = blockMarkers(env);
  const from = document.indexOf(start);
  const to = document.indexOf(end);
  if (from < 0 || to < from) throw new Error(`docs/deploy.md has no ${start} … ${end} block`);
  return `${document.slice(0, from + start.length)}\n${content}\n${document.slice(to)}`;
};
