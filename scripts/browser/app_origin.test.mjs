// A frontend on its own dev server (another local port, as Vite serves one) against the dev
// stack started with DEV_APP_ORIGIN: its page signs in with the code flow and PKCE through the
// stack's hosted page (client my-app, which dev.sh registered for that origin), exchanges the
// code at the token endpoint cross-origin, and calls the gateway's /api (CORS for that origin).
//
//   node scripts/browser/app_origin.test.mjs <base url> <dir with node_modules> <app port>
import assert from "node:assert/strict";
import http from "node:http";
import { launchChromium } from "./chromium.mjs";

const [base, dir, port] = process.argv.slice(2);
const origin = `http://localhost:${port}`;

// The app: one page, about what an SPA's sign-in module does.
const page_html = `<!doctype html><meta charset=utf-8><title>my app</title>
<button id=signin>Sign in</button><pre id=out></pre>
<script type=module>
const issuer = ${JSON.stringify(base)}, client_id = "my-app", redirect_uri = location.origin + "/callback";
const b64 = (b) => btoa(String.fromCharCode(...new Uint8Array(b))).replace(/\\+/g, "-").replace(/\\//g, "_").replace(/=+$/, "");
const meta = await (await fetch(issuer + "/.well-known/openid-configuration")).json();
const q = new URLSearchParams(location.search);
if (q.has("code")) {
  const saved = JSON.parse(sessionStorage.getItem("pkce"));
  if (q.get("state") !== saved.state || q.get("iss") !== meta.issuer) throw new Error("not our response");
  const t = await (await fetch(meta.token_endpoint, { method: "POST", body: new URLSearchParams({
    grant_type: "authorization_code", code: q.get("code"), redirect_uri, code_verifier: saved.verifier, client_id }) })).json();
  const api = await fetch(issuer + "/api/whoami", { headers: { authorization: "Bearer " + t.access_token } });
  document.getElementById("out").textContent = JSON.stringify({ status: api.status, body: await api.json() });
}
document.getElementById("signin").onclick = async () => {
  const verifier = b64(crypto.getRandomValues(new Uint8Array(32))), state = b64(crypto.getRandomValues(new Uint8Array(16)));
  sessionStorage.setItem("pkce", JSON.stringify({ verifier, state }));
  const challenge = b64(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(verifier)));
  location.assign(meta.authorization_endpoint + "?" + new URLSearchParams({ response_type: "code", client_id, redirect_uri,
    scope: "openid profile", state, code_challenge: challenge, code_challenge_method: "S256" }));
};
</script>`;
const server = http.createServer((req, res) => {
  res.writeHead(200, { "content-type": "text/html; charset=utf-8" });
  res.end(page_html);
});
await new Promise((ok) => server.listen(Number(port), "127.0.0.1", ok));

const browser = await launchChromium(dir);
try {
  const username = `vite${Date.now()}`;
  const password = `correct horse battery staple ${Date.now()}`;
  const reg = await fetch(`${base}/v1/users`, {
    method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ username, password }),
  });
  const registered = await reg.text();
  assert.equal(reg.status, 201, registered);
  const page = await (await browser.newContext()).newPage();
  const errors = [];
  page.on("pageerror", (e) => errors.push(String(e)));
  await page.goto(`${origin}/`);
  await page.click("#signin");
  await page.waitForSelector("#password");
  await page.fill("#username", username);
  await page.fill("#password", password);
  await page.click("button[type=submit]");
  await page.waitForFunction(() => document.getElementById("out").textContent !== "");
  const out = JSON.parse(await page.textContent("#out"));
  assert.equal(out.status, 200, JSON.stringify(out));
  assert.equal(out.body.user_id, JSON.parse(registered).id);
  assert.equal(out.body.client_id, "my-app");
  assert.deepEqual(errors, []);
  await page.screenshot({ path: `${dir}/app-origin.png`, fullPage: true });
  console.log(`app-origin: a page on ${origin} signed in through the stack and called /api (status 200)`);
} finally {
  await browser.close();
  server.close();
}
