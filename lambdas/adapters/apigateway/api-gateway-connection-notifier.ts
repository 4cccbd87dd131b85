/** Pushes frames to WebSocket clients through the API Gateway Management API (@connections). */
import {
  type ApiGatewayManagementApiClient,
  GoneException,
  PostToConnectionCommand,
} from "@aws-sdk/client-apigatewaymanagementapi";
import type { ConnectionNotifier, DeliveryResult } from "../../core/ports.ts";
import type { TierGuard } from "../resilience/tier-guard.ts";

export class ApiGatewayConnectionNotifier implements ConnectionNotifier {
  constructor(
    private readonly client: ApiGatewayManagementApiClient,
    private readonly guard: TierGuard,
  ) {}

  send(connectionId: string, frame: string): Promise<DeliveryResult> {
    return this.guard.run(async () => {
      try {
        await this.client.send(
          new PostToConnectionCommand({ ConnectionId: connectionId, Data: Buffer.from(frame) }),
        );
        return "sent";
      } catch (error) {
        if (error instanceof GoneException) return "gone";
        throw error;
      }
    });
  }
}
