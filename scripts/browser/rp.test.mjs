// Relying parties that are not ours, unmodified, signing users in through the hosted pages in
// Debian's Chromium (playwright-core): openid-client (npm) as a confidential server-side client
// with its own callback server, and Authlib (Python, scripts/browser/authlib_rp.py) as another.
// Each validates the ID token with its library's own checks, reads UserInfo and calls a gateway
// route. The second app signs in silently on the same browser; prompt=none without a session
// answers login_required; logout through end_session_endpoint ends the browser session, the
// gateway refuses both apps' access tokens within a second, and the back-channel logout token
// reaches the app that registered for it. Screenshots are kept.
//
//   node scripts/browser/rp.test.mjs <base url> <dir with node_modules>
// Environment: RP_NODE_PORT, RP_NODE_SECRET, RP_PY_PORT, RP_PY_SECRET, INTEROP_PYTHON.
import { createRequire } from "node:module";
import { spawn } from "node:child_process";
import assert from "node:assert/strict";
import http from "node:http";
import path from "node:path";
import { launchChromium } from "./chromium.mjs";

const [base, dir] = process.argv.slice(2);
const need = createRequire(path.resolve(dir) + "/");
const client = await import(need.resolve("openid-client"));
const step = (s) => console.log(`rp: ${s}`);
const env = (k) => { const v = process.env[k]; assert.ok(v, `${k} is not set`); return v; };

// The openid-client relying party: /login, /callback, /logout, /bye, /bcl (back-channel).
const nodePort = Number(env("RP_NODE_PORT"));
const here = `http://127.0.0.1:${nodePort}`;
const config = await client.discovery(new URL(base), "rp-node", env("RP_NODE_SECRET"), undefined,
  { execute: [client.allowInsecureRequests] });
const pending = new Map();
const rp = { tokens: null, logoutTokens: [] };
const server = http.createServer(async (req, res) => {
  const url = new URL(req.url, here);
  const send = (status, body, headers = {}) => {
    res.writeHead(status, { "content-type": "text/html; charset=utf-8", ...headers });
    res.end(body);
  };
  try {
    if (url.pathname === "/login") {
      const code_verifier = client.randomPKCECodeVerifier();
      const state = client.randomState();
      const nonce = client.randomNonce();
      pending.set(state, { code_verifier, nonce });
      const params = {
        redirect_uri: `${here}/callback`, scope: "openid profile email", state, nonce,
        code_challenge: await client.calculatePKCECodeChallenge(code_verifier), code_challenge_method: "S256",
      };
      if (url.searchParams.get("prompt")) params.prompt = url.searchParams.get("prompt");
      return send(302, "", { location: client.buildAuthorizationUrl(config, params).href });
    }
    if (url.pathname === "/callback") {
      if (url.searchParams.get("error")) {
        return send(200, `<pre id="result">${JSON.stringify(Object.fromEntries(url.searchParams))}</pre>`);
      }
      const { code_verifier, nonce } = pending.get(url.searchParams.get("state"));
      const tokens = await client.authorizationCodeGrant(config, url, {
        pkceCodeVerifier: code_verifier, expectedState: url.searchParams.get("state"), expectedNonce: nonce,
        idTokenExpected: true,
      });
      const claims = tokens.claims();
      const userinfo = await client.fetchUserInfo(config, tokens.access_token, claims.sub);
      const api = await fetch(`${base}/api/whoami`, { headers: { authorization: `Bearer ${tokens.access_token}` } });
      rp.tokens = tokens;
      const result = {
        rp: "openid-client", sub: claims.sub, sid: claims.sid, preferred_username: claims.preferred_username,
        userinfo, gateway_status: api.status, gateway_user: api.ok ? (await api.json()).user_id : null,
      };
      return send(200, `<pre id="result">${JSON.stringify(result)}</pre>`);
    }
    if (url.pathname === "/logout") {
      const to = client.buildEndSessionUrl(config, {
        id_token_hint: rp.tokens.id_token, post_logout_redirect_uri: `${here}/bye`, state: "node-bye",
      });
      return send(302, "", { location: to.href });
    }
    if (url.pathname === "/bye") {
      return send(200, `<pre id="result">${JSON.stringify(Object.fromEntries(url.searchParams))}</pre>`);
    }
    if (url.pathname === "/bcl" && req.method === "POST") {
      let body = "";
      for await (const chunk of req) body += chunk;
      rp.logoutTokens.push(new URLSearchParams(body).get("logout_token"));
      return send(200, "");
    }
    send(404, "not found");
  } catch (err) {
    send(500, `<pre id="error">${String(err?.stack || err)}</pre>`);
  }
});
await new Promise((ok) => server.listen(nodePort, "127.0.0.1", ok));

// The Authlib relying party, in its own process.
const pyPort = Number(env("RP_PY_PORT"));
const py = spawn(env("INTEROP_PYTHON"), ["scripts/browser/authlib_rp.py", base, base, String(pyPort), "rp-python",
  env("RP_PY_SECRET")], { stdio: ["ignore", "inherit", "inherit"] });
const pyBase = `http://127.0.0.1:${pyPort}`;
for (let i = 0; i < 100; i++) {
  try { await fetch(`${pyBase}/bye`); break; } catch { await new Promise((ok) => setTimeout(ok, 100)); }
}

const browser = await launchChromium(dir);
const result = async (page) => JSON.parse(await page.textContent("#result"));
try {
  const username = `rp${Date.now()}`;
  const password = `correct horse battery staple ${Date.now()}`;
  const email = `${username}@example.com`;
  const reg = await fetch(`${base}/v1/users`, {
    method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ username, password, email }),
  });
  const registered = await reg.text();
  assert.equal(reg.status, 201, registered);
  const userId = JSON.parse(registered).id;

  const context = await browser.newContext();
  const page = await context.newPage();
  const seen = [];
  page.on("response", (r) => seen.push(`${r.request().method()} ${new URL(r.url()).pathname} ${r.status()}`));
  await page.goto(`${here}/login`);
  await page.waitForSelector("#password");
  await page.screenshot({ path: `${dir}/rp-sign-in.png`, fullPage: true });
  await page.fill("#username", username);
  await page.fill("#password", password);
  await page.click("button[type=submit]");
  await page.waitForSelector("#result");
  const node = await result(page);
  assert.equal(node.sub, userId);
  assert.equal(node.preferred_username, username);
  assert.equal(node.userinfo.sub, userId);
  assert.equal(node.userinfo.email, email);
  assert.equal(node.userinfo.email_verified, false);
  assert.equal(node.gateway_status, 200);
  assert.equal(node.gateway_user, userId);
  await page.screenshot({ path: `${dir}/rp-openid-client.png`, fullPage: true });
  step("openid-client (confidential, its own callback server): ID token validated by the library, UserInfo, a gateway call");

  seen.length = 0;
  await page.goto(`${pyBase}/login`);
  await page.waitForSelector("#result");
  const authlib = await result(page);
  assert.equal(authlib.sub, userId);
  assert.equal(authlib.sid, node.sid, "one browser session");
  assert.equal(authlib.userinfo.preferred_username, username);
  assert.equal(authlib.gateway_status, 200);
  assert.ok(!seen.some((s) => s.startsWith("POST /v1/signin")), `asked for a password: ${seen.join(", ")}`);
  await page.screenshot({ path: `${dir}/rp-authlib.png`, fullPage: true });
  step("Authlib (a second app, same browser): signed in silently, ID token validated by Authlib (at_hash, nonce, aud, azp)");

  const stranger = await (await browser.newContext()).newPage();
  await stranger.goto(`${here}/login?prompt=none`);
  await stranger.waitForSelector("#result");
  const silent = await result(stranger);
  assert.equal(silent.error, "login_required");
  assert.equal(silent.iss, base);
  step("prompt=none in a browser without a session: login_required");

  const nodeAccess = rp.tokens.access_token;
  await page.goto(`${here}/logout`);
  await page.waitForSelector("#result");
  const bye = await result(page);
  assert.equal(bye.state, "node-bye");
  const loggedOutAt = Date.now();
  let statuses = [];
  for (let i = 0; i < 20; i++) {
    const a = (await fetch(`${base}/api/whoami`, { headers: { authorization: `Bearer ${nodeAccess}` } })).status;
    const b = Number((await (await fetch(`${pyBase}/check`)).text()).match(/>(\d+)</)[1]);
    statuses = [a, b];
    if (a === 401 && b === 401) break;
    await new Promise((ok) => setTimeout(ok, 50));
  }
  assert.deepEqual(statuses, [401, 401], "both apps' access tokens refused by the gateway");
  assert.ok(Date.now() - loggedOutAt < 1000, "within a second");
  step(`logout through end_session_endpoint: both apps' tokens refused by the gateway in ${Date.now() - loggedOutAt} ms`);

  for (let i = 0; i < 100 && rp.logoutTokens.length === 0; i++) await new Promise((ok) => setTimeout(ok, 100));
  assert.equal(rp.logoutTokens.length, 1, "one back-channel logout token");
  const [header, payload] = rp.logoutTokens[0].split(".").slice(0, 2)
    .map((p) => JSON.parse(Buffer.from(p, "base64url").toString()));
  assert.equal(header.typ, "logout+jwt");
  assert.equal(payload.aud, "rp-node");
  assert.equal(payload.sid, node.sid);
  assert.equal(payload.sub, userId);
  assert.ok(payload.events["http://schemas.openid.net/event/backchannel-logout"]);
  step("back-channel logout: a logout token for the session reached openid-client's endpoint");

  // Authlib's own logout: sign in again (the password is asked: the session ended), then
  // leave through end_session_endpoint from Authlib's side.
  await page.goto(`${pyBase}/login`);
  await page.waitForSelector("#password");
  step("after logout, the next sign-in asks for the password again");
  await page.fill("#username", username);
  await page.fill("#password", password);
  await page.click("button[type=submit]");
  await page.waitForSelector("#result");
  assert.equal((await result(page)).gateway_status, 200);
  await page.goto(`${pyBase}/logout`);
  await page.waitForSelector("#result");
  assert.equal((await result(page)).state, "authlib-bye");
  const authlibOut = Date.now();
  let pyStatus = 0;
  for (let i = 0; i < 20; i++) {
    pyStatus = Number((await (await fetch(`${pyBase}/check`)).text()).match(/>(\d+)</)[1]);
    if (pyStatus === 401) break;
    await new Promise((ok) => setTimeout(ok, 50));
  }
  assert.equal(pyStatus, 401);
  assert.ok(Date.now() - authlibOut < 1000, "within a second");
  step(`Authlib's own logout through end_session_endpoint: its token refused by the gateway in ${Date.now() - authlibOut} ms`);
  console.log(`rp: passed (screenshots in ${dir})`);
} finally {
  await browser.close();
  py.kill();
  server.close();
}
