"use strict";
// Sign-in with the OpenID Connect authorization code flow and PKCE, written out by hand (about
// a hundred lines, no library, no build step) so that every step is visible: the page sends the
// browser to the provider's hosted sign-in page, gets a code back, and exchanges it with its
// PKCE verifier for tokens, which stay in this page's memory only. A reload asks the provider
// again with prompt=none: the browser's sign-in session answers without a password.
const CLIENT_ID = "demo";
const REDIRECT_URI = `${location.origin}/app/`;
const SCOPE = "openid profile offline_access";
let tokens = null; // { access_token, refresh_token, id_token } — never in storage

const $ = (id) => document.getElementById(id);
const status = (text) => { $("status").textContent = text; };
let metadata = null;
async function provider() {
  metadata ??= await (await fetch("/.well-known/openid-configuration")).json();
  return metadata;
}
const b64url = (bytes) => btoa(String.fromCharCode(...new Uint8Array(bytes)))
  .replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
const random = () => b64url(crypto.getRandomValues(new Uint8Array(32)));
const fromB64url = (s) => Uint8Array.from(atob(s.replace(/-/g, "+").replace(/_/g, "/")), (c) => c.charCodeAt(0));
const claims = (jwt) => JSON.parse(new TextDecoder().decode(fromB64url(jwt.split(".")[1])));

// The ID token's checks (OpenID Connect Core §3.1.3.7), with WebCrypto: an RS256 signature by a
// key of the provider's JWKS (the algorithm comes from the key, never from the token), then
// iss, aud, azp, exp and nonce.
async function verifyIdToken(jwt, nonce) {
  const [h, p, sig] = jwt.split(".");
  const header = JSON.parse(new TextDecoder().decode(fromB64url(h)));
  const { issuer, jwks_uri } = await provider();
  const { keys } = await (await fetch(jwks_uri)).json();
  const jwk = keys.find((k) => k.kid === header.kid && k.kty === "RSA" && k.alg === "RS256");
  if (!jwk || header.alg !== "RS256") throw new Error("the ID token is not signed by the provider's key");
  const key = await crypto.subtle.importKey("jwk", { kty: "RSA", n: jwk.n, e: jwk.e, alg: "RS256", ext: true },
    { name: "RSASSA-PKCS1-v1_5", hash: "SHA-256" }, false, ["verify"]);
  const ok = await crypto.subtle.verify("RSASSA-PKCS1-v1_5", key, fromB64url(sig), new TextEncoder().encode(`${h}.${p}`));
  const c = claims(jwt);
  if (!ok) throw new Error("the ID token's signature does not verify");
  if (c.iss !== issuer) throw new Error("the ID token comes from another issuer");
  if (c.aud !== CLIENT_ID || (c.azp && c.azp !== CLIENT_ID)) throw new Error("the ID token is for another app");
  if (c.exp * 1000 < Date.now()) throw new Error("the ID token has expired");
  if (c.nonce !== nonce) throw new Error("the ID token's nonce is not ours");
}

// To the provider: a fresh verifier, state and nonce, kept in sessionStorage for the return.
async function signIn(prompt) {
  const { authorization_endpoint } = await provider();
  const verifier = random(), state = random(), nonce = random();
  const challenge = b64url(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(verifier)));
  sessionStorage.setItem("oidc", JSON.stringify({ verifier, state, nonce, prompt }));
  const params = new URLSearchParams({
    response_type: "code", client_id: CLIENT_ID, redirect_uri: REDIRECT_URI, scope: SCOPE,
    state, nonce, code_challenge: challenge, code_challenge_method: "S256",
  });
  if (prompt) params.set("prompt", prompt);
  location.assign(`${authorization_endpoint}?${params}`);
}

// Back from the provider: check state and iss (RFC 9207), exchange the code, check the nonce.
async function callback(params) {
  const saved = JSON.parse(sessionStorage.getItem("oidc") || "null");
  sessionStorage.removeItem("oidc");
  history.replaceState(null, "", REDIRECT_URI);
  const { issuer, token_endpoint } = await provider();
  if (!saved || params.get("state") !== saved.state) throw new Error("the response's state is not ours");
  if (params.get("iss") !== issuer) throw new Error("the response comes from another issuer");
  if (params.get("error")) {
    if (saved.prompt === "none") return false; // no session at the provider: not signed in
    throw new Error(params.get("error_description") || params.get("error"));
  }
  const res = await fetch(token_endpoint, {
    method: "POST",
    headers: { "content-type": "application/x-www-form-urlencoded" },
    body: new URLSearchParams({
      grant_type: "authorization_code", code: params.get("code"), redirect_uri: REDIRECT_URI,
      code_verifier: saved.verifier, client_id: CLIENT_ID,
    }),
  });
  const body = await res.json();
  if (!res.ok) throw new Error(body.error_description || body.error);
  await verifyIdToken(body.id_token, saved.nonce);
  tokens = body;
  return true;
}

// A new access token with the refresh token (which rotates with it).
async function refresh() {
  if (!tokens?.refresh_token) return false;
  const { token_endpoint } = await provider();
  const res = await fetch(token_endpoint, {
    method: "POST",
    headers: { "content-type": "application/x-www-form-urlencoded" },
    body: new URLSearchParams({ grant_type: "refresh_token", refresh_token: tokens.refresh_token, client_id: CLIENT_ID }),
  });
  if (!res.ok) return false;
  tokens = { ...tokens, ...(await res.json()) };
  return true;
}

// A downstream call through the gateway; on 401 (expired token), one silent refresh and retry.
async function api(path) {
  const call = () => fetch(path, { headers: tokens ? { authorization: `Bearer ${tokens.access_token}` } : {} });
  let res = await call();
  if (res.status === 401 && await refresh()) res = await call();
  return res;
}

async function showWhoAmI() {
  const res = await api("/api/whoami");
  if (!res.ok) { signedOut(`the API answered ${res.status}`); return; }
  const body = await res.json();
  const { userinfo_endpoint } = await provider();
  const info = await (await fetch(userinfo_endpoint, { headers: { authorization: `Bearer ${tokens.access_token}` } })).json();
  $("who").textContent = body.user_id;
  $("name").textContent = info.preferred_username;
  $("out").textContent = JSON.stringify(body, null, 2);
  $("signin").hidden = true;
  $("session").hidden = false;
  status("signed in");
}

function signedOut(reason) {
  tokens = null;
  $("session").hidden = true;
  $("signin").hidden = false;
  status(reason);
}

$("signin-button").addEventListener("click", () => signIn());
$("call").addEventListener("click", showWhoAmI);
// RP-initiated logout: the provider ends the browser's session (and every token issued
// through it) and comes back here.
$("logout").addEventListener("click", async () => {
  const { end_session_endpoint } = await provider();
  const params = new URLSearchParams({
    id_token_hint: tokens.id_token, post_logout_redirect_uri: REDIRECT_URI, client_id: CLIENT_ID,
  });
  sessionStorage.setItem("signed-out", "1");
  location.assign(`${end_session_endpoint}?${params}`);
});

// On load: a response from the provider, or a silent sign-in (prompt=none) once per visit.
(async () => {
  const params = new URLSearchParams(location.search);
  try {
    if (params.has("state")) {
      if (await callback(params)) { await showWhoAmI(); return; }
      signedOut("not signed in");
      return;
    }
    if (sessionStorage.getItem("signed-out")) {
      sessionStorage.removeItem("signed-out");
      signedOut("signed out");
      return;
    }
    await signIn("none");
  } catch (err) {
    signedOut(`sign-in failed: ${err.message}`);
  }
})();
