// Every hosted page a person sees, driven in Debian's Chromium (playwright-core) the way a person
// uses it, each with a screenshot: sign-in (keyboard order), sign-up (a field error, then the
// account), consent (asked once, then remembered), the account page (withdraw the consent),
// the error page (an unregistered redirect URI: no redirect), the sign-out confirmation and the
// signed-out page. The apps' redirect URIs are answered by a stand-in that shows a page.
//
//   node scripts/browser/pages.test.mjs <base url> <dir with node_modules>
import assert from "node:assert/strict";
import crypto from "node:crypto";
import http from "node:http";
import { launchChromium } from "./chromium.mjs";

const [base, dir] = process.argv.slice(2);
const step = (s) => console.log(`pages: ${s}`);
// The apps' redirect URIs (loopback: any port matches the registered http://127.0.0.1/callback).
const stand_in = http.createServer((req, res) => {
  res.writeHead(200, { "content-type": "text/html" });
  res.end("<p id=app>the app</p>");
});
await new Promise((ok) => stand_in.listen(0, "127.0.0.1", ok));
const APP = `http://127.0.0.1:${stand_in.address().port}`;

const verifier = crypto.randomBytes(32).toString("base64url");
const challenge = crypto.createHash("sha256").update(verifier).digest("base64url");
const authorize = (client, extra = {}) => `${base}/v1/authorize?${new URLSearchParams({
  response_type: "code", client_id: client, redirect_uri: `${APP}/callback`, scope: "openid profile",
  state: "pages", code_challenge: challenge, code_challenge_method: "S256", ...extra,
})}`;

const browser = await launchChromium(dir);
async function context() {
  const ctx = await browser.newContext();
  const page = await ctx.newPage();
  const violations = [];
  page.on("console", (m) => { if (/Content.Security.Policy/i.test(m.text())) violations.push(m.text()); });
  return { ctx, page, violations };
}
try {
  const username = `pages${Date.now()}`;
  const password = `correct horse battery staple ${Date.now()}`;
  const reg = await fetch(`${base}/v1/users`, {
    method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ username, password }),
  });
  assert.equal(reg.status, 201, await reg.text());

  // Sign in, by keyboard: the focus starts on the username and moves in reading order.
  const { page, violations } = await context();
  await page.goto(authorize("partner"));
  assert.equal(await page.evaluate(() => document.activeElement.id), "username");
  await page.keyboard.type(username);
  await page.keyboard.press("Tab");
  assert.equal(await page.evaluate(() => document.activeElement.id), "password");
  await page.keyboard.type(password);
  await page.keyboard.press("Tab");
  assert.equal(await page.evaluate(() => document.activeElement.type), "submit");
  await page.keyboard.press("Enter");
  step("sign-in by keyboard: username, password, submit, in that order");

  // Consent, asked for a third-party app.
  await page.waitForSelector("text=Allow access?");
  assert.match(await page.textContent("main"), /know who you are/);
  assert.match(await page.textContent("main"), /see your username/);
  await page.screenshot({ path: `${dir}/hosted-consent.png`, fullPage: true });
  await page.click("button[value=allow]");
  await page.waitForSelector("#app");
  const back = new URL(page.url());
  assert.ok(back.searchParams.get("code"), page.url());
  assert.equal(back.searchParams.get("state"), "pages");
  await page.goto(authorize("partner"));
  await page.waitForSelector("#app");
  assert.ok(new URL(page.url()).searchParams.get("code"), "consent remembered");
  step("consent: asked once for the third-party app, then remembered");

  // The account page: sessions and consents; withdraw the consent.
  await page.goto(`${base}/v1/account`);
  await page.waitForSelector("text=Applications you allowed");
  assert.match(await page.textContent("main"), /this browser/);
  await page.screenshot({ path: `${dir}/hosted-account.png`, fullPage: true });
  await page.click("button[aria-label^='Withdraw access']");
  await page.waitForSelector("text=None.");
  await page.goto(authorize("partner"));
  await page.waitForSelector("text=Allow access?");
  step("the account page lists sessions and consents; a withdrawn consent is asked again");

  // The error page: a redirect URI the app did not register; the browser stays here.
  const res = await page.goto(authorize("partner", { redirect_uri: "https://attacker.example/cb" }));
  assert.equal(res.status(), 400);
  assert.equal(new URL(page.url()).origin, new URL(base).origin);
  assert.match(await page.textContent("[role=alert]"), /not one it registered/);
  await page.screenshot({ path: `${dir}/hosted-error.png`, fullPage: true });
  step("an unregistered redirect URI: the error page, no redirect");

  // Sign out: a link without the app's ID token asks first; then the signed-out page.
  await page.goto(`${base}/v1/end-session`);
  await page.waitForSelector("text=Sign out?");
  await page.screenshot({ path: `${dir}/hosted-sign-out.png`, fullPage: true });
  await page.click("button[type=submit]");
  await page.waitForSelector("text=You are signed out.");
  await page.screenshot({ path: `${dir}/hosted-signed-out.png`, fullPage: true });
  await page.goto(`${base}/v1/account`);
  await page.waitForSelector("#password");
  assert.deepEqual(violations, [], "CSP violations");
  step("sign-out: confirmed on the page, then signed out (the account page asks for a password again)");

  // Sign up (prompt=create) for a first-party app: a field error, then the account and the app.
  const fresh = await context();
  await fresh.page.goto(authorize("rp-python", { prompt: "create" }));
  await fresh.page.waitForSelector("text=Create an account");
  const newName = `new${Date.now()}`;
  await fresh.page.fill("#username", newName);
  await fresh.page.fill("#password", "too short");
  await fresh.page.click("button[type=submit]");
  await fresh.page.waitForSelector("#password-error");
  assert.equal(await fresh.page.getAttribute("#password", "aria-invalid"), "true");
  assert.match(await fresh.page.getAttribute("#password", "aria-describedby"), /password-error/);
  assert.equal(await fresh.page.inputValue("#username"), newName, "what was typed is kept");
  await fresh.page.screenshot({ path: `${dir}/hosted-sign-up-error.png`, fullPage: true });
  await fresh.page.fill("#password", `${password} again`);
  await fresh.page.click("button[type=submit]");
  await fresh.page.waitForSelector("#app");
  assert.ok(new URL(fresh.page.url()).searchParams.get("code"));
  assert.deepEqual(fresh.violations, [], "CSP violations");
  step("sign-up: the password rule shown on its field; the new account goes on to the app");
  console.log(`pages: passed (screenshots in ${dir})`);
} finally {
  await browser.close();
  stand_in.close();
}
