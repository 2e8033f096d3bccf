// The browser login flow of the demo page (gateway /app), driven in Debian's Chromium by
// playwright-core: log in; the downstream call shows the user; a reload keeps the session
// through the cookie; the refresh token is not readable from document.cookie; an expired access
// token is refreshed silently; logout makes the next downstream call fail. Screenshots are kept.
//
//   node scripts/browser/login.test.mjs <base url> <dir with node_modules/playwright-core>
import { createRequire } from "node:module";
import assert from "node:assert/strict";
import path from "node:path";

const [base, dir] = process.argv.slice(2);
const { chromium } = createRequire(path.resolve(dir) + "/")("playwright-core");
const accessTtl = Number(process.env.AUTH_ACCESS_TOKEN_TTL || 5);
const step = (s) => console.log(`browser: ${s}`);

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  headless: true,
  args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync"],
});
try {
  const context = await browser.newContext();
  const page = await context.newPage();
  const seen = [];
  page.on("response", (r) => seen.push(`${r.request().method()} ${new URL(r.url()).pathname} ${r.status()}`));

  const username = `pw${Date.now()}`;
  const password = `correct horse battery staple ${Date.now()}`;
  const reg = await page.request.post(`${base}/v1/users`, { data: { username, password } });
  assert.equal(reg.status(), 201, await reg.text());
  const userId = (await reg.json()).id;

  await page.goto(`${base}/app`);
  await page.waitForFunction(() => document.getElementById("status").textContent === "not signed in");
  step("the page loads signed out");

  await page.fill("#username", username);
  await page.fill("#password", password);
  await page.click("#login-button");
  await page.waitForSelector("#session:not([hidden])");
  assert.equal(await page.textContent("#who"), userId, "the downstream call shows the user");
  const out = JSON.parse(await page.textContent("#out"));
  assert.equal(out.service, "demo-upstream");
  assert.equal(out.user_id, userId);
  await page.screenshot({ path: `${dir}/signed-in.png`, fullPage: true });
  step(`logged in; the demo service, through the gateway, sees user ${userId}`);

  const cookies = await context.cookies();
  const refresh = cookies.find((c) => c.name === "auth_refresh");
  assert.ok(refresh, "the browser holds the refresh-token cookie");
  assert.equal(refresh.httpOnly, true);
  assert.equal(refresh.secure, true);
  assert.equal(refresh.sameSite, "Strict");
  assert.equal(refresh.path, "/v1");
  const visible = await page.evaluate(() => document.cookie);
  assert.ok(!visible.includes("auth_refresh") && !visible.includes(refresh.value),
    `document.cookie shows the refresh token: ${visible}`);
  const stored = await page.evaluate(() => JSON.stringify({ ...localStorage }) + JSON.stringify({ ...sessionStorage }));
  assert.ok(!stored.includes("eyJ"), `a token in web storage: ${stored}`);
  step("the refresh token is an HttpOnly, Secure, SameSite=Strict cookie, invisible to scripts");

  await page.reload();
  await page.waitForSelector("#session:not([hidden])");
  assert.equal(await page.textContent("#who"), userId);
  step("a reload keeps the session through the cookie");

  // Let the in-memory access token expire; the next call refreshes silently.
  await page.waitForTimeout((accessTtl + 1) * 1000);
  seen.length = 0;
  const answered = page.waitForResponse((r) => r.url().endsWith("/api/whoami") && r.status() === 200);
  await page.click("#call");
  await answered;
  assert.ok(seen.includes("GET /api/whoami 401"), seen.join(", "));
  assert.ok(seen.includes("POST /v1/token 200"), seen.join(", "));
  assert.equal(seen.filter((s) => s === "GET /api/whoami 200").length, 1, seen.join(", "));
  step("an expired access token: 401, one silent refresh, the call succeeds");

  const token = await page.evaluate(() => accessToken);
  assert.ok(token);
  await page.click("#logout");
  await page.waitForFunction(() => document.getElementById("status").textContent === "signed out");
  await page.screenshot({ path: `${dir}/signed-out.png`, fullPage: true });
  let status = 0;
  for (let i = 0; i < 20; i++) {
    status = await page.evaluate(async (t) =>
      (await fetch("/api/whoami", { headers: { authorization: `Bearer ${t}` } })).status, token);
    if (status === 401) break;
    await page.waitForTimeout(100);
  }
  assert.equal(status, 401, "the access token still passes after logout");
  assert.ok(!(await context.cookies()).some((c) => c.name === "auth_refresh"), "the cookie survived logout");
  await page.reload();
  await page.waitForFunction(() => document.getElementById("status").textContent === "not signed in");
  step("logout: the next downstream call gets 401, the cookie is gone, a reload stays signed out");
  console.log(`browser: passed (screenshots: ${dir}/signed-in.png, ${dir}/signed-out.png)`);
} finally {
  await browser.close();
}
