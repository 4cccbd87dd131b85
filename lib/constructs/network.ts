/**
 * The VPC and its traffic rules. Three tiers of subnets: public (the NAT device only), private with
 * egress (the Lambdas: JWKS, ClickHouse and the @connections API go out through NAT) and isolated
 * (PostgreSQL, RDS Proxy and the cache: no route out of the VPC at all). The security groups of
 * the clients live here; each data store owns its own group and admits these clients only. The
 * VPC's default security group is stripped of its rules (nothing may use it by accident).
 *
 * Egress is either managed NAT gateways or one NAT instance (a few dollars a month instead of
 * $33 per gateway: for environments that may lose egress for a while). Either way its public
 * addresses are fixed for the life of the stack, or allocated beforehand and given as allocation
 * ids, so that an IP allow-list (ClickHouse) can admit them before the first deploy.
 */
import { Aspects, RemovalPolicy } from "aws-cdk-lib";
import * as ec2 from "aws-cdk-lib/aws-ec2";
import * as logs from "aws-cdk-lib/aws-logs";
import { Construct } from "constructs";
import { Problems } from "../shared/problems.ts";

/** AWS APIs the functions can reach through an interface endpoint instead of NAT. */
export type InterfaceEndpointName = "sqs" | "secretsmanager";

const ENDPOINT_SERVICES: Readonly<Record<InterfaceEndpointName, ec2.InterfaceVpcEndpointAwsService>> = {
  sqs: ec2.InterfaceVpcEndpointAwsService.SQS,
  secretsmanager: ec2.InterfaceVpcEndpointAwsService.SECRETS_MANAGER,
};

export type EgressProps =
  | {
      readonly kind: "natGateway";
      /** Gateways, one per AZ (1–maxAzs). */
      readonly count: number;
      /** Elastic IPs allocated beforehand, one per gateway. @default new addresses */
      readonly eipAllocationIds?: readonly string[];
    }
  | {
      readonly kind: "natInstance";
      /** An arm64 (Graviton) instance type, e.g. "t4g.nano". */
      readonly instanceType: string;
      /** An Elastic IP allocated beforehand. @default a new address */
      readonly eipAllocationId?: string;
    };

/** A service reached over AWS PrivateLink (e.g. ClickHouse Cloud), with private DNS. */
export interface PrivateLinkService {
  /** Construct id of the endpoint. */
  readonly id: string;
  /** `com.amazonaws.vpce.<region>.vpce-svc-…` */
  readonly serviceName: string;
  /** The TCP port the functions use. */
  readonly port: number;
}

export interface NetworkProps {
  /** Availability zones (2–6). @default 2 */
  readonly maxAzs?: number;
  /** @default one NAT gateway */
  readonly egress?: EgressProps;
  /** @default ["sqs", "secretsmanager"] */
  readonly interfaceEndpoints?: readonly InterfaceEndpointName[];
  /** @default none */
  readonly privateLinkServices?: readonly PrivateLinkService[];
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

const EIP_ALLOCATION = /^eipalloc-[0-9a-f]{8,17}$/;
const VPCE_SERVICE = /^com\.amazonaws\.vpce\.[a-z0-9-]+\.vpce-svc-[0-9a-f]{8,17}$/;

export const validateNetwork = (
  props: Pick<NetworkProps, "maxAzs" | "egress" | "interfaceEndpoints" | "privateLinkServices">,
): readonly string[] => {
  const maxAzs = props.maxAzs ?? 2;
  const problems = new Problems().integer("maxAzs", maxAzs, 2, 6);
  const egress = props.egress ?? { kind: "natGateway", count: 1 };
  if (egress.kind === "natGateway") {
    problems.integer("egress.count", egress.count, 1, maxAzs);
    if (egress.eipAllocationIds !== undefined) {
      problems.check(
        egress.eipAllocationIds.length === egress.count,
        `egress.eipAllocationIds: one per NAT gateway (${egress.count}), got ${egress.eipAllocationIds.length}`,
      );
      for (const id of egress.eipAllocationIds) {
        problems.check(
          EIP_ALLOCATION.test(id),
          `egress.eipAllocationIds: "${id}" is not an allocation id (eipalloc-…)`,
        );
      }
    }
  } else if (egress.kind === "natInstance") {
    problems.check(
      /^[a-z][a-z0-9-]*\d+g[a-z]*\.[a-z0-9]+$/.test(egress.instanceType),
      `egress.instanceType "${egress.instanceType}" must be an arm64 (Graviton, e.g. t4g.nano) instance type`,
    );
    if (egress.eipAllocationId !== undefined) {
      problems.check(
        EIP_ALLOCATION.test(egress.eipAllocationId),
        `egress.eipAllocationId "${egress.eipAllocationId}" is not an allocation id (eipalloc-…)`,
      );
    }
  } else {
    problems.check(false, 'egress.kind must be "natGateway" or "natInstance"');
  }
  const endpoints = props.interfaceEndpoints ?? [];
  problems.check(
    new Set(endpoints).size === endpoints.length,
    "interfaceEndpoints must not repeat a service",
  );
  for (const e of endpoints) {
    problems.check(
      e in ENDPOINT_SERVICES,
      `interfaceEndpoints: unknown service "${e}" (sqs, secretsmanager)`,
    );
  }
  for (const service of props.privateLinkServices ?? []) {
    problems.add(validatePrivateLinkService(service).map((m) => `${service.id}: ${m}`));
  }
  return problems.list;
};

export const validatePrivateLinkService = (
  s: Pick<PrivateLinkService, "serviceName" | "port">,
): readonly string[] =>
  new Problems()
    .check(
      VPCE_SERVICE.test(s.serviceName),
      `"${s.serviceName}" is not an endpoint service name (com.amazonaws.vpce.<region>.vpce-svc-…)`,
    )
    .integer("port", s.port, 1, 65_535).list;

/**
 * CDK's NAT instance set-up, with the package install retried: the instance downloads it through
 * the address it booted with, which the Elastic IP association below replaces within seconds.
 */
const natInstanceUserData = (): ec2.UserData => {
  const userData = ec2.UserData.forLinux();
  userData.addCommands(
    ...ec2.NatInstanceProviderV2.DEFAULT_USER_DATA_COMMANDS.map((command) =>
      command.startsWith("yum install")
        ? `for attempt in 1 2 3 4 5 6 7 8 9 10; do ${command} && break; sleep 15; done`
        : command,
    ),
  );
  return userData;
};

export class Network extends Construct {
  readonly vpc: ec2.Vpc;
  readonly securityGroups: NetworkSecurityGroups;
  /** Where the Lambdas run. */
  readonly appSubnets: ec2.SubnetSelection = { subnetType: ec2.SubnetType.PRIVATE_WITH_EGRESS };
  /** Where the data stores run. */
  readonly dataSubnets: ec2.SubnetSelection = { subnetType: ec2.SubnetType.PRIVATE_ISOLATED };
  /** The NAT gateways (for their alarms); empty with a NAT instance. */
  readonly natGatewayIds: readonly string[];
  /** The NAT instance, when egress is one. */
  readonly natInstance?: ec2.Instance;
  /** Public addresses of the egress created by this construct (empty when allocated beforehand). */
  readonly egressAddresses: readonly string[];

  constructor(scope: Construct, id: string, props: NetworkProps = {}) {
    super(scope, id);
    const maxAzs = props.maxAzs ?? 2;
    const egress: EgressProps = props.egress ?? { kind: "natGateway", count: 1 };
    new Problems().add(validateNetwork(props)).throwIfAny(`props of ${this.node.path}`);

    const natProvider =
      egress.kind === "natGateway"
        ? ec2.NatProvider.gateway(
            egress.eipAllocationIds !== undefined ? { eipAllocationIds: [...egress.eipAllocationIds] } : {},
          )
        : ec2.NatProvider.instanceV2({
            instanceType: new ec2.InstanceType(egress.instanceType),
            // Nothing from the internet; the functions' groups are admitted below.
            defaultAllowedTraffic: ec2.NatTrafficDirection.OUTBOUND_ONLY,
            userData: natInstanceUserData(),
          });

    this.vpc = new ec2.Vpc(this, "Vpc", {
      ipAddresses: ec2.IpAddresses.cidr(props.cidr ?? "10.40.0.0/16"),
      maxAzs,
      natGateways: egress.kind === "natGateway" ? egress.count : 1,
      natGatewayProvider: natProvider,
      subnetConfiguration: [
        { name: "public", subnetType: ec2.SubnetType.PUBLIC, cidrMask: 24 },
        { name: "app", subnetType: ec2.SubnetType.PRIVATE_WITH_EGRESS, cidrMask: 20 },
        { name: "data", subnetType: ec2.SubnetType.PRIVATE_ISOLATED, cidrMask: 24 },
      ],
      // Nothing uses the default security group: a CDK custom resource (run at deploy only)
      // removes its rules, so a resource left in it by mistake has no traffic at all.
      restrictDefaultSecurityGroup: true,
    });

    if (props.flowLogs ?? false) {
      const logGroup = new logs.LogGroup(this, "FlowLogs", {
        retention: props.logRetention ?? logs.RetentionDays.ONE_MONTH,
        removalPolicy: props.removalPolicy ?? RemovalPolicy.DESTROY,
      });
      this.vpc.addFlowLog("FlowLog", { destination: ec2.FlowLogDestination.toCloudWatchLogs(logGroup) });
    }

    // The S3 gateway endpoint is free (the CloudFormation custom-resource response goes to S3).
    // Interface endpoints cost $0.01/h per AZ each: only where the configuration asks for them,
    // e.g. Secrets Manager for RDS Proxy, which runs in the isolated subnets. The @connections
    // API has no usable endpoint (an execute-api endpoint with private DNS would hide the public
    // WebSocket API): it goes through NAT.
    this.vpc.addGatewayEndpoint("S3", { service: ec2.GatewayVpcEndpointAwsService.S3 });
    const endpointIds: Record<InterfaceEndpointName, string> = {
      sqs: "Sqs",
      secretsmanager: "SecretsManager",
    };
    for (const name of props.interfaceEndpoints ?? ["sqs", "secretsmanager"]) {
      this.vpc.addInterfaceEndpoint(endpointIds[name], {
        service: ENDPOINT_SERVICES[name],
        subnets: this.appSubnets,
        privateDnsEnabled: true,
      });
    }

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
    const clients = [this.securityGroups.functions, this.securityGroups.migrations];

    for (const service of props.privateLinkServices ?? []) {
      const endpoint = this.vpc.addInterfaceEndpoint(service.id, {
        service: new ec2.InterfaceVpcEndpointService(service.serviceName, service.port),
        subnets: this.appSubnets,
        privateDnsEnabled: true,
        open: false,
      });
      for (const client of clients) endpoint.connections.allowFrom(client, ec2.Port.tcp(service.port));
    }

    if (natProvider instanceof ec2.NatInstanceProviderV2) {
      const [instance] = natProvider.gatewayInstances;
      if (instance === undefined) throw new Error("the NAT instance provider created no instance");
      this.natInstance = instance;
      for (const client of clients) natProvider.connections.allowFrom(client, ec2.Port.allTcp());
      // A fixed address: created with the stack (and shown as an output), or allocated beforehand.
      const given = egress.kind === "natInstance" ? egress.eipAllocationId : undefined;
      const eip = given === undefined ? new ec2.CfnEIP(this, "NatInstanceEip", { domain: "vpc" }) : undefined;
      new ec2.CfnEIPAssociation(this, "NatInstanceEipAssociation", {
        allocationId: given ?? (eip as ec2.CfnEIP).attrAllocationId,
        instanceId: instance.instanceId,
      });
      this.egressAddresses = eip !== undefined ? [eip.ref] : [];
      this.natGatewayIds = [];
      Aspects.of(this).add(new ec2.InstanceRequireImdsv2Aspect());
    } else {
      this.natGatewayIds = natProvider.configuredGateways.map((g) => g.gatewayId);
      this.egressAddresses =
        egress.kind === "natGateway" && egress.eipAllocationIds === undefined
          ? this.vpc.publicSubnets.flatMap((subnet) =>
              subnet.node.children.filter((c) => c instanceof ec2.CfnEIP).map((c) => (c as ec2.CfnEIP).ref),
            )
          : [];
    }
  }
}
