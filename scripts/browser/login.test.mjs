// The demo page (gateway /app) as a single-page app signing in with the OpenID Connect code flow
// and PKCE, driven in Debian's Chromium by playwright-core: the silent sign-in finds no session;
// "Sign in" goes to the hosted sign-in page (same origin, strict CSP, anti-framing); the
// password brings the user back signed in, and the downstream call shows the user; the browser
// session's cookie is __Host-, HttpOnly, Secure, SameSite=Lax and no token is in web storage; a
// reload signs in again without a password (prompt=none); an expired access token is refreshed
// silently; signing out through end_session_endpoint makes the gateway refuse the old token
// within a second. Screenshots are kept.
//
//   node scripts/browser/login.test.mjs <base url> <dir with node_modules/playwright-core>
import assert from "node:assert/strict";
import { launchChromium } from "./chromium.mjs";

const [base, dir] = process.argv.slice(2);
const accessTtl = Number(process.env.AUTH_ACCESS_TOKEN_TTL || 5);
const step = (s) => console.log(`browser: ${s}`);

const browser = await launchChromium(dir);
try {
  const context = await browser.newContext();
  const page = await context.newPage();
  const seen = [];
  page.on("response", (r) => seen.push(`${r.request().method()} ${new URL(r.url()).pathname} ${r.status()}`));
  const violations = [];
  page.on("console", (m) => { if (/Content.Security.Policy/i.test(m.text())) violations.push(m.text()); });

  const username = `pw${Date.now()}`;
  const password = `correct horse battery staple ${Date.now()}`;
  const reg = await page.request.post(`${base}/v1/users`, { data: { username, password } });
  assert.equal(reg.status(), 201, await reg.text());
  const userId = (await reg.json()).id;

  await page.goto(`${base}/app`);
  await page.waitForFunction(() => document.getElementById("status").textContent === "not signed in");
  assert.ok(seen.some((s) => s.startsWith("GET /v1/authorize 303")), seen.join(", "));
  step("the page tries a silent sign-in (prompt=none) and comes back signed out");

  await page.click("#signin-button");
  await page.waitForURL((u) => u.pathname === "/v1/authorize");
  await page.screenshot({ path: `${dir}/hosted-sign-in.png`, fullPage: true });
  const signinResponse = await page.request.get(page.url(), { maxRedirects: 0 });
  const csp = signinResponse.headers()["content-security-policy"];
  assert.ok(csp.includes("frame-ancestors 'none'") && csp.includes("script-src 'nonce-"), csp);
  assert.equal(signinResponse.headers()["x-frame-options"], "DENY");
  // Accessible: labels name the fields, and the first field has focus.
  assert.equal(await page.getAttribute("label[for=username]", "for"), "username");
  assert.equal(await page.evaluate(() => document.activeElement.id), "username");
  step("the hosted sign-in page: labelled fields, focus on the first, CSP with nonces, no framing");

  // A wrong password: one answer, tied to the fields.
  await page.fill("#username", username);
  await page.fill("#password", "not the password at all");
  await page.click("button[type=submit]");
  await page.waitForSelector("[role=alert]");
  assert.match(await page.textContent("[role=alert]"), /Invalid username or password/);
  assert.equal(await page.getAttribute("#password", "aria-invalid"), "true");
  await page.screenshot({ path: `${dir}/hosted-sign-in-error.png`, fullPage: true });
  step("a wrong password: the page says so, the fields are marked invalid");

  await page.fill("#password", password);
  await page.click("button[type=submit]");
  await page.waitForSelector("#session:not([hidden])");
  assert.equal(await page.textContent("#who"), userId, "the downstream call shows the user");
  assert.equal(await page.textContent("#name"), username);
  const out = JSON.parse(await page.textContent("#out"));
  assert.equal(out.service, "demo-upstream");
  assert.equal(out.user_id, userId);
  assert.equal(out.client_id, "demo");
  assert.equal(new URL(page.url()).search, "", "the code is gone from the address bar");
  await page.screenshot({ path: `${dir}/signed-in.png`, fullPage: true });
  step(`signed in through the hosted page; the demo service, through the gateway, sees user ${userId}`);

  const cookies = await context.cookies();
  const session = cookies.find((c) => c.name === "__Host-auth_session");
  assert.ok(session, "the browser holds the sign-in session's cookie");
  assert.equal(session.httpOnly, true);
  assert.equal(session.secure, true);
  assert.equal(session.sameSite, "Lax");
  assert.equal(session.path, "/");
  const visible = await page.evaluate(() => document.cookie);
  assert.ok(!visible.includes(session.value), `document.cookie shows the session: ${visible}`);
  const stored = await page.evaluate(() => JSON.stringify({ ...localStorage }) + JSON.stringify({ ...sessionStorage }));
  assert.ok(!stored.includes("eyJ"), `a token in web storage: ${stored}`);
  step("the session cookie is __Host-, HttpOnly, Secure, SameSite=Lax; no token in web storage");

  seen.length = 0;
  await page.reload();
  await page.waitForSelector("#session:not([hidden])");
  assert.equal(await page.textContent("#who"), userId);
  assert.ok(!seen.some((s) => s.startsWith("POST /v1/signin")), seen.join(", "));
  step("a reload signs in again silently (prompt=none, no password)");

  // Let the in-memory access token expire; the next call refreshes silently.
  await page.waitForTimeout((accessTtl + 1) * 1000);
  seen.length = 0;
  const answered = page.waitForResponse((r) => r.url().endsWith("/api/whoami") && r.status() === 200);
  await page.click("#call");
  await answered;
  assert.ok(seen.includes("GET /api/whoami 401"), seen.join(", "));
  assert.ok(seen.includes("POST /v1/token 200"), seen.join(", "));
  step("an expired access token: 401, one silent refresh, the call succeeds");

  const token = await page.evaluate(() => tokens.access_token);
  assert.ok(token);
  await page.click("#logout");
  await page.waitForFunction(() => document.getElementById("status").textContent === "signed out");
  const signedOutAt = Date.now();
  await page.screenshot({ path: `${dir}/signed-out.png`, fullPage: true });
  let status = 0;
  for (let i = 0; i < 20; i++) {
    status = await page.evaluate(async (t) =>
      (await fetch("/api/whoami", { headers: { authorization: `Bearer ${t}` } })).status, token);
    if (status === 401) break;
    await page.waitForTimeout(50);
  }
  assert.equal(status, 401, "the access token still passes after logout");
  assert.ok(Date.now() - signedOutAt < 1000, "refused within a second");
  assert.ok(!(await context.cookies()).some((c) => c.name === "__Host-auth_session"), "the cookie survived logout");
  await page.reload();
  await page.waitForFunction(() => document.getElementById("status").textContent === "not signed in");
  assert.deepEqual(violations, [], "CSP violations");
  step("signed out through end_session_endpoint: the gateway refuses the old token within a second; a reload stays signed out");
  console.log(`browser: passed (screenshots in ${dir})`);
} finally {
  await browser.close();
}
