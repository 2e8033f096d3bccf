"use strict";
// The access token: in memory, never in storage. A reload loses it; the cookie brings it back.
let accessToken = null;
const BROWSER = { "x-requested-with": "fetch" }; // the auth-service's cross-site check

const $ = (id) => document.getElementById(id);
const status = (text) => { $("status").textContent = text; };

async function login(username, password) {
  const res = await fetch("/v1/login", {
    method: "POST",
    headers: { ...BROWSER, "content-type": "application/json" },
    body: JSON.stringify({ username, password, token_delivery: "cookie" }),
  });
  const body = await res.json();
  if (!res.ok) throw new Error(body.error_description || body.error || res.status);
  accessToken = body.access_token;
}

// A new access token from the refresh-token cookie (which rotates with it).
async function refresh() {
  const res = await fetch("/v1/token", {
    method: "POST",
    headers: { ...BROWSER, "content-type": "application/x-www-form-urlencoded" },
    body: "grant_type=refresh_token",
  });
  if (!res.ok) { accessToken = null; return false; }
  accessToken = (await res.json()).access_token;
  return true;
}

// A downstream call through the gateway; on 401 (expired token), one silent refresh and retry.
async function api(path) {
  const call = () => fetch(path, { headers: accessToken ? { authorization: `Bearer ${accessToken}` } : {} });
  let res = await call();
  if (res.status === 401 && await refresh()) res = await call();
  return res;
}

async function showWhoAmI() {
  const res = await api("/api/whoami");
  if (!res.ok) { signedOut(`the API answered ${res.status}`); return; }
  const body = await res.json();
  $("who").textContent = body.user_id;
  $("out").textContent = JSON.stringify(body, null, 2);
  $("login").hidden = true;
  $("session").hidden = false;
  status("signed in");
}

function signedOut(reason) {
  accessToken = null;
  $("session").hidden = true;
  $("login").hidden = false;
  status(reason);
}

$("login").addEventListener("submit", async (e) => {
  e.preventDefault();
  try {
    await login($("username").value, $("password").value);
    $("password").value = "";
    await showWhoAmI();
  } catch (err) {
    status(`login failed: ${err.message}`);
  }
});

$("call").addEventListener("click", showWhoAmI);

$("logout").addEventListener("click", async () => {
  await fetch("/v1/logout", {
    method: "POST",
    headers: { ...BROWSER, ...(accessToken ? { authorization: `Bearer ${accessToken}` } : {}) },
  });
  signedOut("signed out");
});

// On load: a session survives a reload through the cookie.
(async () => {
  if (await refresh()) await showWhoAmI(); else signedOut("not signed in");
})();
