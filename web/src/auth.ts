/**
 * Sign-in. The runtime config (`/config.json`, written by the local stack or the deployment) says
 * how: `local` — pick a user name, the local stack signs a development token; `oidc` — the
 * environment's Cognito hosted UI or OIDC provider, authorization code with PKCE; a token can
 * always be pasted. The token lives in localStorage (every tab of the user shares it).
 */

import type { AuthConfig, ClientConfig } from "./config.ts";

const KEY = "chat.token";

export const loadConfig = async (): Promise<ClientConfig> => {
  const res = await fetch("config.json", { cache: "no-store" });
  if (!res.ok) throw new Error(`config.json: HTTP ${res.status}`);
  return (await res.json()) as ClientConfig;
};

export const storedToken = (): string | null => localStorage.getItem(KEY);

export const signOut = (): void => localStorage.removeItem(KEY);

export const useToken = (token: string): void => localStorage.setItem(KEY, token.trim());

/** The user id a token names (`sub`), for display; null when it is not a JWT. */
export const subjectOf = (token: string): string | null => {
  try {
    const payload = JSON.parse(atob((token.split(".")[1] ?? "").replace(/-/g, "+").replace(/_/g, "/"))) as {
      sub?: string;
      exp?: number;
    };
    if (payload.exp !== undefined && payload.exp * 1000 < Date.now()) return null;
    return payload.sub ?? null;
  } catch {
    return null;
  }
};

export const localSignIn = async (auth: { tokenUrl: string }, user: string): Promise<void> => {
  const res = await fetch(auth.tokenUrl, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ sub: user }),
  });
  if (!res.ok) throw new Error(`sign-in failed: HTTP ${res.status}`);
  useToken(((await res.json()) as { token: string }).token);
};

const base64url = (bytes: ArrayBuffer): string =>
  btoa(String.fromCharCode(...new Uint8Array(bytes)))
    .replace(/\+/g, "-")
    .replace(/\//g, "_")
    .replace(/=+$/, "");

const redirectUri = (): string => `${location.origin}${location.pathname}`;

/** Sends the browser to the provider's sign-in page (authorization code with PKCE). */
export const oidcSignIn = async (auth: Extract<AuthConfig, { mode: "oidc" }>): Promise<void> => {
  const verifier = base64url(crypto.getRandomValues(new Uint8Array(32)).buffer);
  const challenge = base64url(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(verifier)));
  const state = base64url(crypto.getRandomValues(new Uint8Array(16)).buffer);
  sessionStorage.setItem("chat.pkce", JSON.stringify({ verifier, state }));
  const q = new URLSearchParams({
    response_type: "code",
    client_id: auth.clientId,
    redirect_uri: redirectUri(),
    scope: auth.scope,
    code_challenge: challenge,
    code_challenge_method: "S256",
    state,
  });
  location.assign(`${auth.authorizeUrl}?${q}`);
};

/** Back from the provider with `?code`: exchanges it for tokens (the id token is the API's bearer). */
export const completeOidcSignIn = async (auth: AuthConfig): Promise<void> => {
  const params = new URLSearchParams(location.search);
  const code = params.get("code");
  if (auth.mode !== "oidc" || code === null) return;
  const saved = JSON.parse(sessionStorage.getItem("chat.pkce") ?? "{}") as {
    verifier?: string;
    state?: string;
  };
  sessionStorage.removeItem("chat.pkce");
  history.replaceState(null, "", redirectUri());
  if (saved.verifier === undefined || saved.state !== params.get("state"))
    throw new Error("sign-in state mismatch");
  const res = await fetch(auth.tokenUrl, {
    method: "POST",
    headers: { "content-type": "application/x-www-form-urlencoded" },
    body: new URLSearchParams({
      grant_type: "authorization_code",
      client_id: auth.clientId,
      code,
      redirect_uri: redirectUri(),
      code_verifier: saved.verifier,
    }),
  });
  if (!res.ok) throw new Error(`token exchange failed: HTTP ${res.status}`);
  const tokens = (await res.json()) as { id_token?: string; access_token?: string };
  useToken(tokens.id_token ?? tokens.access_token ?? "");
};
