/**
 * The VPC and its traffic rules. Three tiers of subnets: public (NAT gateways only), private with
 * egress (the Lambdas: JWKS, ClickHouse and the @connections API go out through NAT) and isolated
 * (PostgreSQL, RDS Proxy and the cache: no route out of the VPC at all). The security groups of
 * the clients live here; each data store owns its own group and admits these clients only.
 */
import { RemovalPolicy } from "aws-cdk-lib";
import * as ec2 from "aws-cdk-lib/aws-ec2";
import * as logs from "aws-cdk-lib/aws-logs";
import { Construct } from "constructs";
import { Problems } from "../shared/problems.ts";

export interface NetworkProps {
  /** Availability zones (2–6). @default 2 */
  readonly maxAzs?: number;
  /** NAT gateways (1–maxAzs). @default 1 */
  readonly natGateways?: number;
  /** VPC address range. @default "10.40.0.0/16" */
  readonly cidr?: string;
  /** VPC flow logs to CloudWatch Logs. @default false */
  readonly flowLogs?: boolean;
  /** Retention of the flow log group. @default RetentionDays.ONE_MONTH */
  readonly logRetention?: logs.RetentionDays;
  /** Removal policy of the flow log group. @default RemovalPolicy.DESTROY */
  readonly removalPolicy?: RemovalPolicy;
}

export interface NetworkSecurityGroups {
  /** Every Lambda that serves traffic or consumes a queue (clients of RDS Proxy and the cache). */
  readonly functions: ec2.ISecurityGroup;
  /** The schema-migration Lambda (the only client that connects to the cluster directly). */
  readonly migrations: ec2.ISecurityGroup;
}

export const validateNetwork = (props: Pick<NetworkProps, "maxAzs" | "natGateways">): readonly string[] => {
  const maxAzs = props.maxAzs ?? 2;
  return new Problems()
    .integer("maxAzs", maxAzs, 2, 6)
    .integer("natGateways", props.natGateways ?? 1, 1, maxAzs).list;
};

export class Network extends Construct {
  readonly vpc: ec2.Vpc;
  readonly securityGroups: NetworkSecurityGroups;
  /** Where the Lambdas run. */
  readonly appSubnets: ec2.SubnetSelection = { subnetType: ec2.SubnetType.PRIVATE_WITH_EGRESS };
  /** Where the data stores run. */
  readonly dataSubnets: ec2.SubnetSelection = { subnetType: ec2.SubnetType.PRIVATE_ISOLATED };

  constructor(scope: Construct, id: string, props: NetworkProps = {}) {
    super(scope, id);
    const maxAzs = props.maxAzs ?? 2;
    const natGateways = props.natGateways ?? 1;
    new Problems().add(validateNetwork(props)).throwIfAny(`props of ${this.node.path}`);

    this.vpc = new ec2.Vpc(this, "Vpc", {
      ipAddresses: ec2.IpAddresses.cidr(props.cidr ?? "10.40.0.0/16"),
      maxAzs,
      natGateways,
      subnetConfiguration: [
        { name: "public", subnetType: ec2.SubnetType.PUBLIC, cidrMask: 24 },
        { name: "app", subnetType: ec2.SubnetType.PRIVATE_WITH_EGRESS, cidrMask: 20 },
        { name: "data", subnetType: ec2.SubnetType.PRIVATE_ISOLATED, cidrMask: 24 },
      ],
      // Nothing uses the default security group. Stripping its rules takes a CDK custom-resource
      // Lambda (Node 24, x86_64) outside this project's functions; left off on purpose.
      restrictDefaultSecurityGroup: false,
    });

    if (props.flowLogs ?? false) {
      const logGroup = new logs.LogGroup(this, "FlowLogs", {
        retention: props.logRetention ?? logs.RetentionDays.ONE_MONTH,
        removalPolicy: props.removalPolicy ?? RemovalPolicy.DESTROY,
      });
      this.vpc.addFlowLog("FlowLog", { destination: ec2.FlowLogDestination.toCloudWatchLogs(logGroup) });
    }

    // Endpoints for the AWS APIs the Lambdas call most: SQS on every accepted message, Secrets
    // Manager on every cold start (RDS Proxy reads its secret through it too), S3 for the
    // CloudFormation custom-resource response. The @connections API has no usable endpoint (an
    // execute-api endpoint with private DNS would hide the public WebSocket API): it goes via NAT.
    this.vpc.addGatewayEndpoint("S3", { service: ec2.GatewayVpcEndpointAwsService.S3 });
    this.vpc.addInterfaceEndpoint("Sqs", {
      service: ec2.InterfaceVpcEndpointAwsService.SQS,
      subnets: this.appSubnets,
      privateDnsEnabled: true,
    });
    this.vpc.addInterfaceEndpoint("SecretsManager", {
      service: ec2.InterfaceVpcEndpointAwsService.SECRETS_MANAGER,
      subnets: this.appSubnets,
      privateDnsEnabled: true,
    });

    // Outbound: NAT (JWKS, ClickHouse, @connections), the endpoints and the data stores.
    this.securityGroups = {
      functions: new ec2.SecurityGroup(this, "FunctionsSg", {
        vpc: this.vpc,
        description: "Chat pipeline Lambdas",
        allowAllOutbound: true,
      }),
      migrations: new ec2.SecurityGroup(this, "MigrationsSg", {
        vpc: this.vpc,
        description: "Chat pipeline schema migrations",
        allowAllOutbound: true,
      }),
    };
  }
}
