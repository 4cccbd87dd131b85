/** Structured JSON logs and CloudWatch EMF metrics (Powertools), one instance per process. */
import { Logger } from "@aws-lambda-powertools/logger";
import { Metrics, MetricUnit } from "@aws-lambda-powertools/metrics";
import type { Diagnostics } from "../core/ports.ts";
import { config } from "./config.ts";
import { METRICS_NAMESPACE, Metric, type MetricName, SERVICE_NAME } from "./metric-names.ts";

export const logger = new Logger({
  serviceName: SERVICE_NAME,
  logLevel: config().LOG_LEVEL,
  persistentKeys: { env: config().APP_ENV },
});

export const metrics = new Metrics({
  namespace: METRICS_NAMESPACE,
  serviceName: SERVICE_NAME,
  defaultDimensions: { env: config().APP_ENV },
  // Routes that record nothing (reads of thread lists, say) are normal, not worth a warning each time.
  logger: {
    debug: (...args: unknown[]) => logger.debug(String(args[0])),
    info: (...args: unknown[]) => logger.info(String(args[0])),
    warn: (...args: unknown[]) => {
      const text = String(args[0]);
      if (text.startsWith("No application metrics")) logger.debug(text);
      else logger.warn(text);
    },
    error: (...args: unknown[]) => logger.error(String(args[0])),
  },
});

export const diagnostics: Diagnostics = {
  warn: (message, attributes) => logger.warn(message, attributes ?? {}),
};

export const countMetric = (name: MetricName, value = 1): void => {
  if (value > 0) metrics.addMetric(name, MetricUnit.Count, value);
};

export const timeMetric = (name: MetricName, ms: number): void => {
  metrics.addMetric(name, MetricUnit.Milliseconds, ms);
};

/** A request refused because this process is overloaded: counted, logged as a warning without a stack. */
export const shed = (error: Error): void => {
  countMetric(Metric.RequestsShed);
  logger.warn("request shed", { reason: error.message });
};
