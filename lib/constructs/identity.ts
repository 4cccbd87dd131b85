/**
 * Where the bearer tokens come from. The Lambdas verify JWTs themselves against a JWKS
 * (JWT_JWKS_URL, JWT_ISSUER, JWT_AUDIENCE, JWT_ROLES_CLAIM); this construct produces those
 * settings, either from an external OpenID Connect provider or from a Cognito user pool it
 * creates, with the groups the application knows as roles (`admin`, `service`).
 */
import { Duration, RemovalPolicy, Stack } from "aws-cdk-lib";
import * as cognito from "aws-cdk-lib/aws-cognito";
import { Construct } from "constructs";
import type { PrincipalRole } from "../../lambdas/core/model.ts";
import { ROLE_CLAIMS } from "../../lambdas/core/model.ts";
import { Problems } from "../shared/problems.ts";

/** What the Lambdas need to verify a token. */
export interface JwtSettings {
  readonly jwksUrl: string;
  readonly issuer: string;
  /** Expected `aud`; omit to accept any audience from this issuer. */
  readonly audience?: string;
  /** Claim holding the roles (`admin`, `service`), an array or a space-separated string. */
  readonly rolesClaim: string;
}

/** How the Cognito app client lets users sign in: every choice explicit, none of CDK's defaults. */
export interface CognitoClientSettings {
  /**
   * USER_PASSWORD_AUTH: the client sends the password itself to Cognito (scripts, the curl
   * examples of docs/deploy.md). SRP sign-in (USER_SRP_AUTH) is always on.
   */
  readonly passwordAuth: boolean;
  /**
   * OAuth 2.0 / hosted UI with the authorization code grant only (never the implicit grant), for
   * these callback and sign-out URLs (https, or http://localhost for development).
   * @default OAuth off: no OAuth flow and no callback URL at all
   */
  readonly oauth?: { readonly callbackUrls: readonly string[]; readonly logoutUrls: readonly string[] };
}

export type IdentityProps =
  | ({
      readonly kind: "cognito";
      /** Physical name of the user pool. */
      readonly userPoolName: string;
      /** @default RemovalPolicy.DESTROY (and no deletion protection) */
      readonly removalPolicy?: RemovalPolicy;
    } & CognitoClientSettings)
  | ({ readonly kind: "oidc" } & JwtSettings);

const httpsUrl = (value: string): boolean => {
  try {
    return new URL(value).protocol === "https:";
  } catch {
    return false;
  }
};

const callbackUrl = (value: string): boolean => {
  try {
    const url = new URL(value);
    return url.protocol === "https:" || (url.protocol === "http:" && url.hostname === "localhost");
  } catch {
    return false;
  }
};

export const validateIdentity = (props: IdentityProps): readonly string[] => {
  const problems = new Problems();
  if (props.kind === "cognito" && props.oauth !== undefined) {
    const { callbackUrls, logoutUrls } = props.oauth;
    problems.check(
      callbackUrls.length > 0,
      "oauth.callbackUrls must not be empty (leave oauth out to turn OAuth off)",
    );
    for (const url of [...callbackUrls, ...logoutUrls]) {
      problems.check(callbackUrl(url), `oauth: "${url}" must be an https URL (or http://localhost)`);
    }
  }
  if (props.kind === "oidc") {
    problems.check(httpsUrl(props.issuer), `issuer must be an https URL (got "${props.issuer}")`);
    problems.check(httpsUrl(props.jwksUrl), `jwksUrl must be an https URL (got "${props.jwksUrl}")`);
    problems.check(props.rolesClaim.length > 0, "rolesClaim must not be empty");
    problems.check(props.audience === undefined || props.audience.length > 0, "audience must not be empty");
  }
  return problems.list;
};

export class Identity extends Construct {
  readonly jwt: JwtSettings;
  /** Set when the pool is created here. */
  readonly userPool?: cognito.UserPool;
  readonly userPoolClient?: cognito.UserPoolClient;

  constructor(scope: Construct, id: string, props: IdentityProps) {
    super(scope, id);
    new Problems().add(validateIdentity(props)).throwIfAny(`props of ${this.node.path}`);

    if (props.kind === "oidc") {
      this.jwt = {
        jwksUrl: props.jwksUrl,
        issuer: props.issuer,
        rolesClaim: props.rolesClaim,
        ...(props.audience !== undefined ? { audience: props.audience } : {}),
      };
      return;
    }

    const removalPolicy = props.removalPolicy ?? RemovalPolicy.DESTROY;
    const pool = new cognito.UserPool(this, "UserPool", {
      userPoolName: props.userPoolName,
      selfSignUpEnabled: false,
      signInAliases: { email: true },
      autoVerify: { email: true },
      passwordPolicy: { minLength: 12, requireSymbols: false },
      mfa: cognito.Mfa.OPTIONAL,
      mfaSecondFactor: { otp: true, sms: false },
      accountRecovery: cognito.AccountRecovery.EMAIL_ONLY,
      deletionProtection: removalPolicy === RemovalPolicy.RETAIN,
      removalPolicy,
    });
    const roles: readonly PrincipalRole[] = ROLE_CLAIMS;
    for (const role of roles) {
      new cognito.UserPoolGroup(this, `Group-${role}`, {
        userPool: pool,
        groupName: role,
        description: `Chat pipeline role "${role}" (claim cognito:groups)`,
      });
    }
    const { oauth } = props;
    const client = pool.addClient("AppClient", {
      authFlows: { userSrp: true, userPassword: props.passwordAuth },
      // CDK's defaults would turn on the implicit grant with an https://example.com callback.
      ...(oauth === undefined
        ? { disableOAuth: true }
        : {
            oAuth: {
              flows: { authorizationCodeGrant: true, implicitCodeGrant: false, clientCredentials: false },
              scopes: [cognito.OAuthScope.OPENID, cognito.OAuthScope.EMAIL, cognito.OAuthScope.PROFILE],
              callbackUrls: [...oauth.callbackUrls],
              logoutUrls: [...oauth.logoutUrls],
            },
          }),
      generateSecret: false,
      preventUserExistenceErrors: true,
      idTokenValidity: Duration.hours(1),
      accessTokenValidity: Duration.hours(1),
      refreshTokenValidity: Duration.days(30),
    });
    const region = Stack.of(this).region;
    this.userPool = pool;
    this.userPoolClient = client;
    // Cognito puts `aud` (= the client id) and `cognito:groups` in the ID token: clients send it.
    this.jwt = {
      issuer: `https://cognito-idp.${region}.amazonaws.com/${pool.userPoolId}`,
      jwksUrl: `https://cognito-idp.${region}.amazonaws.com/${pool.userPoolId}/.well-known/jwks.json`,
      audience: client.userPoolClientId,
      rolesClaim: "cognito:groups",
    };
  }
}
