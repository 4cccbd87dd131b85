/** Measures the CPU one SQS SendMessage costs the client (and the local endpoint), per SDK configuration. */
import { fork } from "node:child_process";
import http from "node:http";
import { CreateQueueCommand, SendMessageCommand, SQSClient, type SQSClientConfig } from "@aws-sdk/client-sqs";
import { NodeHttpHandler } from "@smithy/node-http-handler";
import { SignedHttp } from "../../lambdas/adapters/aws/signed-http.ts";
import { sqsClientConfig } from "../../lambdas/adapters/sqs/client.ts";
import { signedSqsCalls } from "../../lambdas/adapters/sqs/sqs-calls.ts";

if (process.argv[2] === "server") {
  const { startSqsEndpoint } = await import("../local-stack/sqs-endpoint.ts");
  const ep = await startSqsEndpoint(0);
  process.send?.({ endpoint: ep.endpoint });
  process.on("message", () => {
    const cpu = process.cpuUsage();
    process.send?.({ cpuMs: (cpu.user + cpu.system) / 1000 });
  });
} else {
  const server = fork(import.meta.filename, ["server"], {
    execArgv: ["--import", "tsx"],
    stdio: ["ignore", "inherit", "inherit", "ipc"],
  });
  const { endpoint } = await new Promise<{ endpoint: string }>((r) => server.once("message", r as never));
  const serverCpu = () =>
    new Promise<number>((r) => {
      server.once("message", (m: { cpuMs: number }) => r(m.cpuMs));
      server.send({});
    });
  const base = { endpoint, region: "us-east-1", credentials: { accessKeyId: "a", secretAccessKey: "b" } };
  const variants: Record<string, SQSClientConfig> = {
    "SDK defaults": base,
    "project config (md5 off, timeouts)": { ...base, ...sqsClientConfig({ timeoutMs: 500 }) },
    "project config + keep-alive agent": {
      ...base,
      ...sqsClientConfig({ timeoutMs: 500 }),
      requestHandler: new NodeHttpHandler({
        httpAgent: new http.Agent({ keepAlive: true, maxSockets: 64 }),
        connectionTimeout: 500,
        requestTimeout: 500,
      }),
    },
  };
  for (const [name, config] of Object.entries(variants)) {
    const client = new SQSClient(config);
    const { QueueUrl } = await client.send(new CreateQueueCommand({ QueueName: "cost" }));
    const body = JSON.stringify({ v: 1, message: { id: "x".repeat(36), content: "y".repeat(160) } });
    for (let i = 0; i < 500; i++) await client.send(new SendMessageCommand({ QueueUrl, MessageBody: body }));
    const n = 3000;
    const s0 = await serverCpu();
    const cpu0 = process.cpuUsage();
    for (let i = 0; i < n; i++) await client.send(new SendMessageCommand({ QueueUrl, MessageBody: body }));
    const cpu = process.cpuUsage(cpu0);
    const s1 = await serverCpu();
    console.log(
      `${name.padEnd(38)} client ${((cpu.user + cpu.system) / n / 1000).toFixed(3)} ms, endpoint ${((s1 - s0) / n).toFixed(3)} ms per SendMessage`,
    );
    client.destroy();
  }
  {
    // The accept path's transport: one signed AWS JSON request, no SDK call machinery.
    const sqs = signedSqsCalls(
      new SignedHttp({
        service: "sqs",
        region: "us-east-1",
        credentials: base.credentials,
        endpoint: new URL(endpoint),
        timeoutMs: 500,
        maxAttempts: 2,
      }),
    );
    const setup = new SQSClient(base);
    const { QueueUrl } = await setup.send(new CreateQueueCommand({ QueueName: "cost" }));
    const QueueUrlOf = QueueUrl as string;
    const body = JSON.stringify({ v: 1, message: { id: "x".repeat(36), content: "y".repeat(160) } });
    for (let i = 0; i < 500; i++) await sqs.sendMessage({ QueueUrl: QueueUrlOf, MessageBody: body });
    const n = 3000;
    const s0 = await serverCpu();
    const cpu0 = process.cpuUsage();
    for (let i = 0; i < n; i++) await sqs.sendMessage({ QueueUrl: QueueUrlOf, MessageBody: body });
    const cpu = process.cpuUsage(cpu0);
    const s1 = await serverCpu();
    console.log(
      `${"signed request (aws/signed-http.ts)".padEnd(38)} client ${((cpu.user + cpu.system) / n / 1000).toFixed(3)} ms, endpoint ${((s1 - s0) / n).toFixed(3)} ms per SendMessage`,
    );
    setup.destroy();
  }
  server.kill();
  process.exit(0);
}
