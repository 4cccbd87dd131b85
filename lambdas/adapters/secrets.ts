/** A JSON secret from Secrets Manager (database, Redis and ClickHouse credentials). */
import { GetSecretValueCommand, SecretsManagerClient } from "@aws-sdk/client-secrets-manager";

export type SecretJson = Record<string, string | number | undefined>;

export const readSecretJson = async (secretId: string, timeoutMs = 3000): Promise<SecretJson> => {
  const client = new SecretsManagerClient({
    maxAttempts: 3,
    requestHandler: { requestTimeout: timeoutMs, throwOnRequestTimeout: true },
  });
  try {
    const { SecretString } = await client.send(new GetSecretValueCommand({ SecretId: secretId }));
    if (SecretString === undefined) throw new Error(`secret ${secretId} has no string value`);
    return JSON.parse(SecretString) as SecretJson;
  } finally {
    client.destroy();
  }
};
