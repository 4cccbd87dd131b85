/**
 * The web client's static site, where an environment turns it on: a private bucket served only
 * through CloudFront (origin access control, HTTPS), the built files and a config.json written at
 * deploy time with this environment's endpoints, and the site's origin among the API's CORS origins.
 */
import { describe, expect, it } from "vitest";
import { environment, synthesize } from "./support/synth.ts";
import { type Json, resources } from "./support/template-queries.ts";

const dev = environment("dev");
const withSite = synthesize({ ...dev, webClient: { enabled: true } });

describe("web client static site", () => {
  it("is off unless the environment turns it on", () => {
    for (const name of ["dev", "prod"] as const) {
      expect(environment(name).webClient.enabled).toBe(false);
      expect(resources(synthesize(environment(name)).app, "AWS::CloudFront::Distribution")).toEqual([]);
    }
  });

  it("serves a private bucket through CloudFront only, over HTTPS", () => {
    const [[, bucket] = ["", undefined]] = resources(withSite.app, "AWS::S3::Bucket");
    expect(bucket?.Properties?.PublicAccessBlockConfiguration).toEqual({
      BlockPublicAcls: true,
      BlockPublicPolicy: true,
      IgnorePublicAcls: true,
      RestrictPublicBuckets: true,
    });
    const [[, distribution] = ["", undefined]] = resources(withSite.app, "AWS::CloudFront::Distribution");
    const config = distribution?.Properties?.DistributionConfig;
    expect(config.DefaultRootObject).toBe("index.html");
    expect(config.DefaultCacheBehavior.ViewerProtocolPolicy).toBe("redirect-to-https");
    expect(config.Origins[0].OriginAccessControlId).toBeDefined();
    expect(resources(withSite.app, "AWS::CloudFront::OriginAccessControl")).toHaveLength(1);
  });

  it("deploys the built client with a config.json naming this environment's endpoints", () => {
    const deployments = resources(withSite.app, "Custom::CDKBucketDeployment");
    expect(deployments).toHaveLength(1);
    const props = (deployments[0] as [string, Json])[1].Properties;
    // The built files and the generated config.json: two sources.
    expect(props.SourceBucketNames).toHaveLength(2);
    const markers = JSON.stringify(props.SourceMarkers ?? props.SourceMarkersConfig ?? {});
    expect(markers).toContain("Http");
    expect(props.DistributionPaths).toEqual(["/index.html", "/config.json"]);
  });

  it("adds the site's origin to the API's CORS origins, and names its URL", () => {
    const [[, api] = ["", undefined]] = resources(withSite.app, "AWS::ApiGatewayV2::Api").filter(
      ([, r]) => r.Properties?.ProtocolType === "HTTP",
    );
    const origins = JSON.stringify(api?.Properties?.CorsConfiguration?.AllowOrigins);
    expect(origins).toContain("DomainName");
    for (const origin of dev.api.corsAllowedOrigins) expect(origins).toContain(origin);
    const outputs = withSite.app.toJSON().Outputs as Record<string, Json>;
    expect(JSON.stringify(outputs.WebClientUrl?.Value)).toContain("DomainName");
  });
});
