/** Readers of synthesized templates shared by the infra tests. */
import type { Template } from "aws-cdk-lib/assertions";

// biome-ignore lint/suspicious/noExplicitAny: CloudFormation JSON is untyped
export type Json = any;

export interface Resource {
  readonly Type: string;
  readonly Properties?: Json;
  readonly DependsOn?: string | string[];
  readonly DeletionPolicy?: string;
  readonly UpdateReplacePolicy?: string;
  readonly Metadata?: Json;
}

export const resources = (template: Template, type?: string): [string, Resource][] =>
  Object.entries((template.toJSON().Resources ?? {}) as Record<string, Resource>).filter(
    ([, r]) => type === undefined || r.Type === type,
  );

export const dependsOn = (r: Resource): string[] =>
  r.DependsOn === undefined ? [] : Array.isArray(r.DependsOn) ? r.DependsOn : [r.DependsOn];

export const asArray = <T>(v: T | T[] | undefined): T[] =>
  v === undefined ? [] : Array.isArray(v) ? v : [v];

export interface Statement {
  readonly where: string;
  readonly Effect: string;
  readonly Action: string[];
  readonly Resource: Json[];
  readonly raw: Json;
}

/** Every statement of every identity policy (AWS::IAM::Policy, managed policies, role inline policies). */
export const iamStatements = (templates: readonly Template[]): Statement[] => {
  const out: Statement[] = [];
  const add = (where: string, doc: Json) => {
    for (const s of asArray<Json>(doc?.Statement)) {
      out.push({ where, Effect: s.Effect, Action: asArray(s.Action), Resource: asArray(s.Resource), raw: s });
    }
  };
  for (const t of templates) {
    for (const [id, r] of resources(t)) {
      if (r.Type === "AWS::IAM::Policy" || r.Type === "AWS::IAM::ManagedPolicy")
        add(id, r.Properties?.PolicyDocument);
      if (r.Type === "AWS::IAM::Role") {
        for (const p of asArray<Json>(r.Properties?.Policies)) add(`${id}/${p.PolicyName}`, p.PolicyDocument);
      }
    }
  }
  return out;
};

export interface MetricRef {
  readonly namespace: string;
  readonly metricName: string;
  readonly dimensions: Readonly<Record<string, Json>>;
  readonly stat?: string;
  readonly label?: string;
}

/** The metrics an alarm watches, plain or as a metric-stat query. */
export const alarmMetrics = (props: Json): MetricRef[] => {
  const dims = (list: Json): Record<string, Json> =>
    Object.fromEntries(asArray<Json>(list).map((d) => [d.Name, d.Value]));
  if (props.MetricName !== undefined) {
    return [
      {
        namespace: props.Namespace,
        metricName: props.MetricName,
        dimensions: dims(props.Dimensions),
        stat: props.Statistic ?? props.ExtendedStatistic,
      },
    ];
  }
  return asArray<Json>(props.Metrics)
    .filter((m) => m.MetricStat !== undefined)
    .map((m) => ({
      namespace: m.MetricStat.Metric.Namespace,
      metricName: m.MetricStat.Metric.MetricName,
      dimensions: dims(m.MetricStat.Metric.Dimensions),
      stat: m.MetricStat.Stat,
    }));
};

/** A dashboard body with every token replaced by a placeholder string. */
export const dashboardBody = (body: Json): Json => {
  const text =
    typeof body === "string"
      ? body
      : (body["Fn::Join"][1] as Json[]).map((part) => (typeof part === "string" ? part : "TOKEN")).join("");
  return JSON.parse(text);
};

/** Every metric drawn on a dashboard: [namespace, name, dim, value, ..., {options}]. */
export const dashboardMetrics = (body: Json): MetricRef[] => {
  const out: MetricRef[] = [];
  for (const widget of asArray<Json>(body.widgets)) {
    for (const line of asArray<Json>(widget.properties?.metrics)) {
      const parts = line as Json[];
      const options = typeof parts[parts.length - 1] === "object" ? parts[parts.length - 1] : {};
      const plain = parts.filter((p) => typeof p !== "object");
      const [namespace, metricName, ...rest] = plain as string[];
      const dimensions: Record<string, string> = {};
      for (let i = 0; i + 1 < rest.length; i += 2) dimensions[rest[i] as string] = rest[i + 1] as string;
      if (namespace !== undefined && metricName !== undefined) {
        out.push({ namespace, metricName, dimensions, stat: options.stat, label: options.label });
      }
    }
  }
  return out;
};

/**
 * The value a cross-stack reference (Fn::GetStackOutput or Fn::ImportValue of a CDK output)
 * stands for in the producing template, e.g. { "Fn::GetAtt": [logicalId, "Arn"] }.
 */
export const crossStackValue = (ref: Json, producer: Template): Json => {
  const outputs = (producer.toJSON().Outputs ?? {}) as Record<
    string,
    { Value: Json; Export?: { Name: string } }
  >;
  const byOutput = ref?.["Fn::GetStackOutput"]?.OutputName as string | undefined;
  if (byOutput !== undefined) return outputs[byOutput]?.Value;
  const byExport = ref?.["Fn::ImportValue"] as string | undefined;
  if (byExport !== undefined) return Object.values(outputs).find((o) => o.Export?.Name === byExport)?.Value;
  return undefined;
};

/** Logical id a value refers to ({Ref: id} or {Fn::GetAtt: [id, attr]}), if any. */
export const referencedId = (value: Json): string | undefined =>
  value?.Ref ?? (Array.isArray(value?.["Fn::GetAtt"]) ? value["Fn::GetAtt"][0] : undefined);

/** Replaces CloudFormation intrinsics with a placeholder string (for values that must be strings). */
export const flatten = (value: Json): string => (typeof value === "string" ? value : "TOKEN");
