#!/usr/bin/env bash
# The compose walkthrough of docs/deployment.md, runnable: every step is a curl command against the gateway
# (the stack's one public entry point), and each one checks what it printed.
#
#   deploy/compose/walkthrough.sh [BASE_URL] [ADMIN_PASSWORD]
#
# BASE_URL defaults to http://localhost:8080; ADMIN_PASSWORD (from .env) adds the admin steps.
# Needs curl only.
set -euo pipefail
base=${1:-http://localhost:8080}
admin_password=${2:-}
user="walker$(date +%s)$RANDOM"
password="correct horse battery staple $RANDOM"

step() { printf '\n== %s\n' "$*"; }
fail() { echo "walkthrough: FAILED: $*" >&2; exit 1; }
field() { grep -o "\"$1\":\"[^\"]*\"" | head -1 | cut -d'"' -f4; }
status() { curl -s -o /dev/null -w '%{http_code}' "$@"; }

step "the issuer's metadata, through the gateway"
meta=$(curl -fsS "$base/.well-known/oauth-authorization-server")
echo "$meta"
[ "$(echo "$meta" | field issuer)" != "" ] || fail "no issuer in the metadata"

step "the demo page signs in with the code flow: its authorization request gets the hosted sign-in page"
issuer=$(echo "$meta" | field issuer)
challenge=E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM
authorize="$base/v1/authorize?response_type=code&client_id=demo&scope=openid&code_challenge=$challenge&code_challenge_method=S256"
page=$(curl -fsS "$authorize&redirect_uri=$issuer/app/")
echo "$page" | grep -q 'action="/v1/signin"' || fail "no sign-in page for the demo client"
[ "$(status "$authorize&redirect_uri=https://elsewhere.example/app/")" = 400 ] || fail "an unregistered redirect URI was accepted"
echo "the sign-in page; an unregistered redirect URI gets the error page (400)"

step "register $user"
curl -fsS -X POST "$base/v1/users" -H 'content-type: application/json' \
  -d "{\"username\":\"$user\",\"password\":\"$password\"}"
echo

step "log in"
tokens=$(curl -fsS -X POST "$base/v1/login" --data-urlencode "username=$user" --data-urlencode "password=$password")
access=$(echo "$tokens" | field access_token)
refresh=$(echo "$tokens" | field refresh_token)
[ -n "$access" ] && [ -n "$refresh" ] || fail "no tokens: $tokens"
echo "access token: ${access:0:24}…  refresh token: ${refresh:0:24}…"

step "call the demo service through the gateway: it sees the verified identity, not the spoofed one"
who=$(curl -fsS "$base/api/whoami" -H "authorization: Bearer $access" -H 'x-user-id: admin')
echo "$who"
me=$(curl -fsS "$base/v1/users/me" -H "authorization: Bearer $access" | field id)
[ "$(echo "$who" | field user_id)" = "$me" ] || fail "the demo service did not see $me"

step "no token: 401; a user's token on an admin route: 403"
[ "$(status "$base/api/whoami")" = 401 ] || fail "expected 401 without a token"
[ "$(status "$base/admin/x" -H "authorization: Bearer $access")" = 403 ] || fail "expected 403"
echo "401, 403"

step "refresh: a new pair; the spent refresh token is refused, and its whole session ends"
pair=$(curl -fsS -X POST "$base/v1/token" -d grant_type=refresh_token --data-urlencode "refresh_token=$refresh")
access2=$(echo "$pair" | field access_token)
[ -n "$access2" ] || fail "no new pair: $pair"
[ "$(status -X POST "$base/v1/token" -d grant_type=refresh_token --data-urlencode "refresh_token=$refresh")" = 400 ] \
  || fail "a reused refresh token was accepted"
sleep 1
[ "$(status "$base/api/whoami" -H "authorization: Bearer $access2")" = 401 ] \
  || fail "the session survived a reused refresh token"
echo "reuse detected: the session's access token is rejected by the gateway"

step "log in again, log out: the gateway rejects the access token within a second"
tokens=$(curl -fsS -X POST "$base/v1/login" --data-urlencode "username=$user" --data-urlencode "password=$password")
access=$(echo "$tokens" | field access_token)
[ "$(status "$base/api/whoami" -H "authorization: Bearer $access")" = 200 ] || fail "fresh login refused"
curl -fsS -o /dev/null -X POST "$base/v1/logout" -H "authorization: Bearer $access"
sleep 1
[ "$(status "$base/api/whoami" -H "authorization: Bearer $access")" = 401 ] || fail "a logged-out token passed"
echo "logged out: 401"

if [ -n "$admin_password" ]; then
  step "the bootstrap admin reaches the admin route and the admin API"
  tokens=$(curl -fsS -X POST "$base/v1/login" --data-urlencode "username=${ADMIN_USERNAME:-admin}" --data-urlencode "password=$admin_password")
  admin=$(echo "$tokens" | field access_token)
  [ "$(status "$base/admin/x" -H "authorization: Bearer $admin")" = 200 ] || fail "admin refused on /admin"
  [ "$(status "$base/v1/admin/users" -H "authorization: Bearer $admin")" = 200 ] || fail "admin API refused"
  echo "200, 200"

  step "a service registers as a client, gets its own token (client credentials) and calls through the gateway"
  client="svc$(date +%s)$RANDOM"
  reg=$(curl -fsS -X POST "$base/v1/admin/clients" -H "authorization: Bearer $admin" \
    -H 'content-type: application/json' -d "{\"client_id\":\"$client\",\"scopes\":[\"profile\"]}")
  secret=$(echo "$reg" | field client_secret)
  [ -n "$secret" ] || fail "no client secret in $reg"
  ctoken=$(curl -fsS -X POST "$base/v1/token" -u "$client:$secret" -d grant_type=client_credentials | field access_token)
  who=$(curl -fsS "$base/api/whoami" -H "authorization: Bearer $ctoken")
  echo "$who"
  [ "$(echo "$who" | field user_id)" = "$client" ] || fail "the demo service did not see $client"
  [ "$(echo "$who" | field principal)" = client ] || fail "the demo service did not see a client principal"
  active=$(curl -fsS -X POST "$base/v1/introspect" -u "$client:$secret" --data-urlencode "token=$ctoken")
  echo "$active" | grep -q '"active":true' || fail "introspection: $active"
  [ "$(status -u "$client:wrong" -X POST "$base/v1/token" -d grant_type=client_credentials)" = 401 ] || fail "a wrong secret passed"

  step "delete the client: the gateway rejects its token within a second"
  [ "$(status -X DELETE "$base/v1/admin/clients/$client" -H "authorization: Bearer $admin")" = 204 ] || fail "client not deleted"
  sleep 1
  [ "$(status "$base/api/whoami" -H "authorization: Bearer $ctoken")" = 401 ] || fail "a deleted client's token passed"
  echo "deleted: 401"
fi

printf '\nwalkthrough: every step behaved as described\n'
