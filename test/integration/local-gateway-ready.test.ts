/**
 * The local HTTP gateway listens before the stack has configured the functions (the queues and
 * the @connections endpoint come after the ports): a request in that window is answered 503 with
 * Retry-After, not run by a function that would read an incomplete configuration and answer 500.
 */
import { afterAll, beforeAll, expect, it } from "vitest";
import { HttpGateway } from "../../scripts/local-stack/http-gateway.ts";
import { LocalFunction } from "../../scripts/local-stack/lambda-runtime.ts";

let gateway: HttpGateway;
let url: string;
let invoked = 0;

beforeAll(async () => {
  const fn = new LocalFunction("Ping", "lambdas/handlers/http/not-found.ts", 1000);
  fn.invoke = async () => {
    invoked++;
    return { statusCode: 200, body: '{"pong":true}' };
  };
  gateway = new HttpGateway([{ routeKey: "GET /api/ping", fn }]);
  url = await gateway.listen(0);
});

afterAll(async () => {
  await gateway.close();
});

it("answers 503 with Retry-After until the stack opens it, then runs the route", async () => {
  const early = await fetch(`${url}/api/ping`);
  expect(early.status).toBe(503);
  expect(early.headers.get("retry-after")).toBe("1");
  expect(invoked).toBe(0);

  gateway.open();
  const ready = await fetch(`${url}/api/ping`);
  expect(ready.status).toBe(200);
  expect(await ready.json()).toEqual({ pong: true });
  expect(invoked).toBe(1);
});
