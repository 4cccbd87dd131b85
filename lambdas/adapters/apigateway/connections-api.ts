/**
 * The API Gateway Management API calls the notifier makes (`@connections`), with two transports:
 * the AWS SDK client, and the lighter signed request (aws/signed-http.ts) — the fan-out pays one
 * call per subscriber per message, so the per-call CPU adds up. Both say "gone" for a connection
 * API Gateway no longer has (410) and fail with the SDK's error shape otherwise.
 */
import {
  type ApiGatewayManagementApiClient,
  DeleteConnectionCommand,
  GoneException,
  PostToConnectionCommand,
} from "@aws-sdk/client-apigatewaymanagementapi";
import { AwsCallError, type SignedHttp, type SignedResponse } from "../aws/signed-http.ts";

export interface ConnectionsApi {
  post(connectionId: string, data: string): Promise<"sent" | "gone">;
  delete(connectionId: string): Promise<"deleted" | "gone">;
}

export const sdkConnectionsApi = (client: ApiGatewayManagementApiClient): ConnectionsApi => ({
  async post(connectionId, data) {
    try {
      await client.send(new PostToConnectionCommand({ ConnectionId: connectionId, Data: Buffer.from(data) }));
      return "sent";
    } catch (error) {
      if (error instanceof GoneException) return "gone";
      throw error;
    }
  },
  async delete(connectionId) {
    try {
      await client.send(new DeleteConnectionCommand({ ConnectionId: connectionId }));
      return "deleted";
    } catch (error) {
      if (error instanceof GoneException) return "gone";
      throw error;
    }
  },
});

/** A REST-JSON error answer (`x-amzn-errortype`, `message`) in the SDK's error shape. */
const restJsonError = (response: SignedResponse): AwsCallError => {
  const header = response.headers["x-amzn-errortype"];
  let name = typeof header === "string" ? (header.split(":")[0] ?? "UnknownError") : "UnknownError";
  let message = `HTTP ${response.status}`;
  try {
    const parsed = JSON.parse(response.body) as { message?: string; Message?: string; __type?: string };
    message = parsed.message ?? parsed.Message ?? message;
    if (name === "UnknownError" && parsed.__type !== undefined) name = parsed.__type;
  } catch {
    // not JSON
  }
  return new AwsCallError(
    name,
    message,
    response.status,
    response.status >= 400 && response.status < 500 && response.status !== 429,
  );
};

export const signedConnectionsApi = (http: SignedHttp): ConnectionsApi => {
  const path = (connectionId: string) => `/@connections/${encodeURIComponent(connectionId)}`;
  return {
    async post(connectionId, data) {
      const response = await http.request("POST", path(connectionId), data, {
        "content-type": "application/octet-stream",
      });
      if (response.status === 200 || response.status === 204) return "sent";
      if (response.status === 410) return "gone";
      throw restJsonError(response);
    },
    async delete(connectionId) {
      const response = await http.request("DELETE", path(connectionId), "", {});
      if (response.status === 200 || response.status === 204) return "deleted";
      if (response.status === 410) return "gone";
      throw restJsonError(response);
    },
  };
};
