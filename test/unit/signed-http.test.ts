import { Sha256 } from "@smithy/core/checksum";
import { SignatureV4 } from "@smithy/signature-v4";
import { describe, expect, it } from "vitest";
import { AwsCallError, isRetryable, jsonError } from "../../lambdas/adapters/aws/signed-http.ts";
import { isAwsOutage } from "../../lambdas/adapters/sqs/client.ts";

describe("signed requests", () => {
  it("the signer and SHA-256 the signed transport uses give AWS's SigV4 test-suite signature (get-vanilla)", async () => {
    // The suite's requests carry no payload-hash header; the transport's requests also sign one.
    const signer = new SignatureV4({
      applyChecksum: false,
      service: "service",
      region: "us-east-1",
      credentials: {
        accessKeyId: "AKIDEXAMPLE",
        secretAccessKey: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
      },
      sha256: Sha256,
    });
    const signed = await signer.sign(
      {
        method: "GET",
        protocol: "https:",
        hostname: "example.amazonaws.com",
        path: "/",
        query: {},
        headers: { host: "example.amazonaws.com" },
      },
      { signingDate: new Date("2015-08-30T12:36:00Z") },
    );
    expect(signed.headers.authorization).toBe(
      "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, " +
        "SignedHeaders=host;x-amz-date, Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31",
    );
  });

  it("read an AWS JSON error in the SDK's shape: the sender's fault is not an outage, throttling and 5xx are", () => {
    const missing = jsonError({
      status: 400,
      body: '{"__type":"com.amazonaws.sqs#QueueDoesNotExist","message":"The specified queue does not exist."}',
      headers: { "x-amzn-query-error": "AWS.SimpleQueueService.NonExistentQueue;Sender" },
    });
    expect(missing).toMatchObject({ name: "AWS.SimpleQueueService.NonExistentQueue", senderFault: true });
    expect(isAwsOutage(missing)).toBe(false);
    expect(isRetryable(missing)).toBe(false);

    const throttled = jsonError({
      status: 400,
      body: '{"__type":"com.amazonaws.sqs#ThrottlingException"}',
      headers: {},
    });
    expect(isAwsOutage(throttled)).toBe(true);
    expect(isRetryable(throttled)).toBe(true);

    const down = jsonError({ status: 503, body: "Service Unavailable", headers: {} });
    expect(isAwsOutage(down)).toBe(true);
    expect(isRetryable(new AwsCallError("ECONNRESET", "socket hang up", undefined, false))).toBe(true);
  });
});
