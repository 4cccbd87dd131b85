/**
 * The web client's runtime config (`config.json` beside the page): written by the local stack
 * (scripts/local-stack/web-site.ts) and by the static site's deployment (lib/constructs/web-client.ts),
 * read by the page (auth.ts). Types only, no DOM: the CDK app and the local stack import it too.
 */

/** How the page signs in. */
export type AuthConfig =
  /** Local stack: a user name, and this endpoint signs a development token for it. */
  | { readonly mode: "local"; readonly tokenUrl: string }
  /** An OIDC provider (e.g. a Cognito hosted UI): authorization code with PKCE. */
  | {
      readonly mode: "oidc";
      readonly authorizeUrl: string;
      readonly tokenUrl: string;
      readonly clientId: string;
      readonly scope: string;
    }
  /** A pasted token. */
  | { readonly mode: "token" };

export interface ClientConfig {
  /** The HTTP API's base URL, ending in /api. */
  readonly apiUrl: string;
  /** The WebSocket API's URL (with its stage), without the token. */
  readonly wsUrl: string;
  readonly auth: AuthConfig;
}
