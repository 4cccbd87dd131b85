/** Pushes frames to WebSocket clients through the API Gateway Management API (@connections). */
import {
  ApiGatewayManagementApiClient,
  type ApiGatewayManagementApiClientConfig,
} from "@aws-sdk/client-apigatewaymanagementapi";
import type { ConnectionNotifier, DeliveryResult } from "../../core/ports.ts";
import { keepAliveHandler } from "../http-handler.ts";
import type { TierGuard } from "../resilience/tier-guard.ts";
import type { ConnectionsApi } from "./connections-api.ts";

/** One call per delivery, bounded: a slow connection is not retried within the fan-out budget. */
export const managementApiConfig = (
  endpoint: string,
  timeoutMs: number,
): ApiGatewayManagementApiClientConfig => ({
  endpoint,
  maxAttempts: 1,
  requestHandler: keepAliveHandler({ timeoutMs, maxSockets: 64 }),
});

export const createManagementApiClient = (
  endpoint: string,
  timeoutMs: number,
): ApiGatewayManagementApiClient =>
  new ApiGatewayManagementApiClient(managementApiConfig(endpoint, timeoutMs));

export class ApiGatewayConnectionNotifier implements ConnectionNotifier {
  constructor(
    private readonly api: ConnectionsApi,
    private readonly guard: TierGuard,
  ) {}

  send(connectionId: string, frame: string): Promise<DeliveryResult> {
    return this.guard.run(() => this.api.post(connectionId, frame));
  }

  disconnect(connectionId: string): Promise<void> {
    return this.guard.run(async () => {
      await this.api.delete(connectionId);
    });
  }
}
