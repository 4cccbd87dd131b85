/**
 * The web client as a static site: a private S3 bucket behind CloudFront (origin access control,
 * HTTPS only), holding the built files (scripts/web/build.ts) and a `config.json` written at deploy
 * time with this environment's API and WebSocket URLs and sign-in — so one build serves every
 * environment, and a new endpoint needs no rebuild. Its origin is added to the HTTP API's CORS
 * origins (app-stack.ts).
 */
import path from "node:path";
import { Duration, type RemovalPolicy } from "aws-cdk-lib";
import * as cloudfront from "aws-cdk-lib/aws-cloudfront";
import * as origins from "aws-cdk-lib/aws-cloudfront-origins";
import * as s3 from "aws-cdk-lib/aws-s3";
import * as s3deploy from "aws-cdk-lib/aws-s3-deployment";
import { Construct } from "constructs";
import { buildWebClientSync } from "../../scripts/web/build.ts";
import type { AuthConfig, ClientConfig } from "../../web/src/config.ts";

/** How the page signs in where it is deployed (development tokens are the local stack's alone). */
export type WebSignIn = Exclude<AuthConfig, { mode: "local" }>;

export interface WebClientProps {
  readonly removalPolicy: RemovalPolicy;
  /** @default the client built into cdk.out/web-client at synth */
  readonly sourceDir?: string;
}

export class WebClient extends Construct {
  readonly bucket: s3.Bucket;
  readonly distribution: cloudfront.Distribution;

  constructor(scope: Construct, id: string, props: WebClientProps) {
    super(scope, id);
    this.bucket = new s3.Bucket(this, "Bucket", {
      blockPublicAccess: s3.BlockPublicAccess.BLOCK_ALL,
      encryption: s3.BucketEncryption.S3_MANAGED,
      enforceSSL: true,
      removalPolicy: props.removalPolicy,
      autoDeleteObjects: false,
    });
    this.distribution = new cloudfront.Distribution(this, "Distribution", {
      comment: "Chat pipeline web client",
      defaultRootObject: "index.html",
      defaultBehavior: {
        origin: origins.S3BucketOrigin.withOriginAccessControl(this.bucket),
        viewerProtocolPolicy: cloudfront.ViewerProtocolPolicy.REDIRECT_TO_HTTPS,
        cachePolicy: cloudfront.CachePolicy.CACHING_OPTIMIZED,
        responseHeadersPolicy: cloudfront.ResponseHeadersPolicy.SECURITY_HEADERS,
      },
      priceClass: cloudfront.PriceClass.PRICE_CLASS_100,
      minimumProtocolVersion: cloudfront.SecurityPolicyProtocol.TLS_V1_2_2021,
    });
  }

  /** https://<distribution domain>: the page's origin (for CORS). */
  get origin(): string {
    return `https://${this.distribution.distributionDomainName}`;
  }

  /**
   * Deploys the files and the runtime config. Called once the API URLs exist (they are part of
   * config.json); `config.json` and `index.html` are never cached long, so a new deploy shows.
   */
  deploy(config: { apiUrl: string; wsUrl: string; signIn: WebSignIn }, sourceDir?: string): void {
    const dir = sourceDir ?? buildWebClientSync(path.join(process.cwd(), "cdk.out", "web-client"));
    new s3deploy.BucketDeployment(this, "Files", {
      destinationBucket: this.bucket,
      distribution: this.distribution,
      distributionPaths: ["/index.html", "/config.json"],
      sources: [
        s3deploy.Source.asset(dir),
        s3deploy.Source.jsonData("config.json", {
          apiUrl: config.apiUrl,
          wsUrl: config.wsUrl,
          auth: config.signIn,
        } satisfies ClientConfig),
      ],
      cacheControl: [s3deploy.CacheControl.maxAge(Duration.minutes(5))],
      memoryLimit: 256,
    });
  }
}
