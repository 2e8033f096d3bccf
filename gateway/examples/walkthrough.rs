//! The local stack's walkthrough (run by `scripts/dev.sh`): registers a user, signs in with the
//! code flow, logs in, calls through the gateway, refreshes, replays a spent refresh token, logs
//! out, and shows the gateway rejecting the revoked tokens. Each step prints the `curl` command of
//! its request, complete and runnable as printed, and checks the answer; any surprise exits
//! non-zero. Values taken from earlier answers (tokens, the sign-in page's CSRF cookie and hidden
//! fields, the code, secrets) go through shell variables whose assignments are printed too, so the
//! printed lines, pasted in order into one bash session, replay the walkthrough.
//!
//! `walkthrough wait URL` waits (up to 60 s) until URL answers 200.
//! `walkthrough run AUTH_URL GATEWAY_URL [CLIENT_ID CLIENT_SECRET]` walks through; with a
//! registered client, also through client credentials, a route for services only, and
//! introspection; with `WALK_ADMIN` and `WALK_ADMIN_PASSWORD` in the environment, that admin
//! logs in and disables the client.
//!
//! `WALK_VIA_CURL=1` runs each printed command itself with `bash -c` (after the assignments
//! printed so far) instead of sending the request with reqwest: the check, run by
//! `scripts/dev_smoke.sh`, that the printed commands work as printed. Both modes share everything
//! but the sending, so they expect the same statuses and fail the same way.

use std::io::IsTerminal;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use serde_json::Value;

/// A shell variable the walkthrough assigned (and printed the assignment of).
#[derive(Clone)]
struct Var {
    name: &'static str,
    value: String,
}

#[derive(Clone)]
enum Part {
    Lit(String),
    Var(Var),
}

/// One shell word: literal text and variables, concatenated.
#[derive(Clone)]
struct Word(Vec<Part>);

impl From<&str> for Word {
    fn from(s: &str) -> Self {
        Word(vec![Part::Lit(s.to_owned())])
    }
}

impl From<String> for Word {
    fn from(s: String) -> Self {
        Word(vec![Part::Lit(s)])
    }
}

impl From<&Var> for Word {
    fn from(v: &Var) -> Self {
        Word(vec![Part::Var(v.clone())])
    }
}

/// Characters a shell word may hold unquoted (no globbing, expansion or history meaning).
fn bare(c: char) -> bool {
    c.is_ascii_alphanumeric() || "-_./:=@,%+".contains(c)
}

/// Characters a form value may hold without URL-encoding.
fn unreserved(c: char) -> bool {
    c.is_ascii_alphanumeric() || "-._~".contains(c)
}

fn single_quoted(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

impl Word {
    fn then(mut self, more: impl Into<Word>) -> Self {
        for part in more.into().0 {
            match (self.0.last_mut(), part) {
                (Some(Part::Lit(a)), Part::Lit(b)) => a.push_str(&b),
                (_, part) => self.0.push(part),
            }
        }
        self
    }

    /// What the shell makes of the word.
    fn value(&self) -> String {
        self.0
            .iter()
            .map(|p| match p {
                Part::Lit(s) => s.as_str(),
                Part::Var(v) => v.value.as_str(),
            })
            .collect()
    }

    /// The literal text, if the word has no variable.
    fn literal(&self) -> Option<String> {
        self.0
            .iter()
            .map(|p| match p {
                Part::Lit(s) => Some(s.as_str()),
                Part::Var(_) => None,
            })
            .collect()
    }

    /// The word as written on a bash command line: bare when safe, single-quoted literals,
    /// variables in double quotes.
    fn shell(&self) -> String {
        if let Some(s) = self.literal() {
            return if !s.is_empty() && s.chars().all(bare) {
                s
            } else {
                single_quoted(&s)
            };
        }
        let plain = self.0.iter().all(|p| match p {
            Part::Lit(s) => !s.contains(['"', '$', '`', '\\', '!']),
            Part::Var(_) => true,
        });
        if !plain {
            // '{"password":"'"$PASSWORD"'"}'
            return self
                .0
                .iter()
                .map(|p| match p {
                    Part::Lit(s) => single_quoted(s),
                    Part::Var(v) => format!("\"${}\"", v.name),
                })
                .collect();
        }
        // "authorization: Bearer $ACCESS"
        let mut out = String::from("\"");
        for (i, p) in self.0.iter().enumerate() {
            match p {
                Part::Lit(s) => out.push_str(s),
                Part::Var(v) => {
                    let glued = matches!(self.0.get(i + 1), Some(Part::Lit(s))
                        if s.starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_'));
                    if glued {
                        out.push_str(&format!("${{{}}}", v.name));
                    } else {
                        out.push_str(&format!("${}", v.name));
                    }
                }
            }
        }
        out.push('"');
        out
    }
}

/// A value in a JSON body.
enum Json {
    Str(Word),
    Raw(Value),
}

enum Body {
    Empty,
    Form(Vec<(&'static str, Word)>),
    Json(Vec<(&'static str, Json)>),
}

enum Credentials {
    None,
    Basic(String, Var),
    Bearer(Var),
}

/// One request of the walkthrough, described once: the printed `curl` line and the request sent
/// (with reqwest, or by running that line) both come from it.
struct Request {
    method: &'static str,
    url: String,
    credentials: Credentials,
    cookie: Option<Var>,
    headers: Vec<(&'static str, Word)>,
    body: Body,
    note: String,
}

impl Request {
    fn new(method: &'static str, url: String) -> Self {
        Request {
            method,
            url,
            credentials: Credentials::None,
            cookie: None,
            headers: Vec::new(),
            body: Body::Empty,
            note: String::new(),
        }
    }

    fn get(url: String) -> Self {
        Self::new("GET", url)
    }

    fn post(url: String) -> Self {
        Self::new("POST", url)
    }

    fn patch(url: String) -> Self {
        Self::new("PATCH", url)
    }

    fn bearer(mut self, token: &Var) -> Self {
        self.credentials = Credentials::Bearer(token.clone());
        self
    }

    fn basic(mut self, id: &str, secret: &Var) -> Self {
        self.credentials = Credentials::Basic(id.to_owned(), secret.clone());
        self
    }

    /// A `name=value` cookie pair, as the variable holds it.
    fn cookie(mut self, pair: &Var) -> Self {
        self.cookie = Some(pair.clone());
        self
    }

    fn header(mut self, name: &'static str, value: impl Into<Word>) -> Self {
        self.headers.push((name, value.into()));
        self
    }

    fn form<const N: usize>(mut self, fields: [(&'static str, Word); N]) -> Self {
        self.body = Body::Form(fields.into());
        self
    }

    fn json<const N: usize>(mut self, fields: [(&'static str, Json); N]) -> Self {
        self.body = Body::Json(fields.into());
        self
    }

    /// What the step shows; printed as a shell comment after the command.
    fn note(mut self, note: impl Into<String>) -> Self {
        self.note = note.into();
        self
    }

    /// The JSON body as one shell word. A variable is spliced into the JSON text as it is, so
    /// its value must need no JSON escaping.
    fn json_word(fields: &[(&'static str, Json)]) -> Result<Word, String> {
        let mut word = Word::from("{");
        for (i, (key, value)) in fields.iter().enumerate() {
            let key = serde_json::to_string(key).map_err(|e| e.to_string())?;
            word = word.then(format!("{}{key}:", if i == 0 { "" } else { "," }));
            match value {
                Json::Raw(v) => word = word.then(v.to_string()),
                Json::Str(s) => {
                    word = word.then("\"");
                    for part in &s.0 {
                        let escaped =
                            serde_json::to_string(&part_value(part)).map_err(|e| e.to_string())?;
                        let inner = &escaped[1..escaped.len() - 1];
                        match part {
                            Part::Lit(_) => word = word.then(inner.to_owned()),
                            Part::Var(v) if inner == v.value => word = word.then(v),
                            Part::Var(v) => {
                                return Err(format!(
                                    "${} needs JSON escaping: it cannot go into a JSON body as it is",
                                    v.name
                                ));
                            }
                        }
                    }
                    word = word.then("\"");
                }
            }
        }
        Ok(word.then("}"))
    }

    /// The printed command: what a person runs, and what `WALK_VIA_CURL=1` runs. `-i` shows the
    /// status and headers (Set-Cookie, Location) before the body.
    fn curl(&self) -> Result<String, String> {
        let mut words: Vec<String> = vec!["curl".into(), "-sSi".into()];
        let inferred = if matches!(self.body, Body::Empty) {
            "GET"
        } else {
            "POST"
        };
        if self.method != inferred {
            words.extend(["-X".into(), self.method.into()]);
        }
        words.push(Word::from(self.url.as_str()).shell());
        match &self.credentials {
            Credentials::None => {}
            Credentials::Basic(id, secret) => {
                let pair = Word::from(format!("{id}:")).then(secret);
                words.extend(["-u".into(), pair.shell()]);
            }
            Credentials::Bearer(token) => {
                let header = Word::from("authorization: Bearer ").then(token);
                words.extend(["-H".into(), header.shell()]);
            }
        }
        if let Some(pair) = &self.cookie {
            words.extend(["-b".into(), Word::from(pair).shell()]);
        }
        for (name, value) in &self.headers {
            let header = Word::from(format!("{name}: ")).then(value.clone());
            words.extend(["-H".into(), header.shell()]);
        }
        match &self.body {
            Body::Empty => {}
            Body::Json(fields) => words.extend([
                "-H".into(),
                Word::from("content-type: application/json").shell(),
                "-d".into(),
                Self::json_word(fields)?.shell(),
            ]),
            Body::Form(fields) => {
                for (name, value) in fields {
                    let plain = value
                        .literal()
                        .is_some_and(|v| !v.is_empty() && v.chars().all(unreserved));
                    let flag = if plain { "-d" } else { "--data-urlencode" };
                    let field = Word::from(format!("{name}=")).then(value.clone());
                    words.extend([flag.into(), field.shell()]);
                }
            }
        }
        let mut line = words.join(" ");
        if !self.note.is_empty() {
            line.push_str("   # ");
            line.push_str(&self.note);
        }
        Ok(line)
    }

    /// The same request for reqwest.
    fn reqwest(&self, http: &reqwest::Client) -> Result<reqwest::RequestBuilder, String> {
        let method =
            reqwest::Method::from_bytes(self.method.as_bytes()).map_err(|e| e.to_string())?;
        let mut req = http.request(method, &self.url);
        match &self.credentials {
            Credentials::None => {}
            Credentials::Basic(id, secret) => req = req.basic_auth(id, Some(&secret.value)),
            Credentials::Bearer(token) => req = req.bearer_auth(&token.value),
        }
        if let Some(pair) = &self.cookie {
            req = req.header("cookie", &pair.value);
        }
        for (name, value) in &self.headers {
            req = req.header(*name, value.value());
        }
        Ok(match &self.body {
            Body::Empty => req,
            Body::Json(fields) => req
                .header("content-type", "application/json")
                .body(Self::json_word(fields)?.value()),
            Body::Form(fields) => {
                let pairs: Vec<(&str, String)> =
                    fields.iter().map(|(k, v)| (*k, v.value())).collect();
                req.form(&pairs)
            }
        })
    }
}

fn part_value(part: &Part) -> &str {
    match part {
        Part::Lit(s) => s,
        Part::Var(v) => &v.value,
    }
}

/// An answer, from reqwest or parsed from `curl -i`'s output.
struct Answer {
    status: u16,
    /// Lower-case names.
    headers: Vec<(String, String)>,
    body: String,
}

impl Answer {
    /// `curl -i`'s output: status line, headers, a blank line, the body (after any 1xx answer).
    fn parse(out: &str) -> Result<Answer, String> {
        let mut rest = out;
        loop {
            let (head, body) = rest
                .split_once("\r\n\r\n")
                .ok_or_else(|| format!("curl printed no HTTP answer: {}", short(out)))?;
            let mut lines = head.split("\r\n");
            let status = lines
                .next()
                .and_then(|l| l.split(' ').nth(1))
                .and_then(|s| s.parse::<u16>().ok())
                .ok_or_else(|| format!("curl printed no status line: {}", short(out)))?;
            if (100..200).contains(&status) {
                rest = body;
                continue;
            }
            let headers = lines
                .filter_map(|l| l.split_once(':'))
                .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
                .collect();
            return Ok(Answer {
                status,
                headers,
                body: body.to_owned(),
            });
        }
    }

    fn headers<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> {
        self.headers
            .iter()
            .filter(move |(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    fn json(&self) -> Result<Value, String> {
        serde_json::from_str(&self.body).map_err(|e| format!("the answer is not JSON: {e}"))
    }

    /// A string member of the JSON body.
    fn field(&self, key: &str) -> Result<String, String> {
        self.json()?[key]
            .as_str()
            .map(str::to_owned)
            .ok_or(format!("no {key} in the answer"))
    }

    /// One line for the terminal.
    fn summary(&self) -> String {
        if let Some(location) = self.headers("location").next() {
            format!("{} → {}", self.status, short(location))
        } else if self
            .headers("content-type")
            .any(|t| t.starts_with("text/html"))
        {
            format!("{} (an HTML page)", self.status)
        } else {
            format!("{} {}", self.status, short(self.body.trim()))
        }
    }
}

fn short(s: &str) -> String {
    match s.char_indices().nth(110) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_owned(),
    }
}

/// A hidden field's value on an HTML page.
fn hidden(html: &str, name: &str) -> Result<String, String> {
    let marker = format!("name=\"{name}\" value=\"");
    let start = html.find(&marker).ok_or(format!("no {name} on the page"))? + marker.len();
    let end = start + html[start..].find('"').ok_or("a broken page")?;
    let mut value = html[start..end].to_owned();
    for (entity, c) in [
        ("&#34;", "\""),
        ("&quot;", "\""),
        ("&#39;", "'"),
        ("&#x27;", "'"),
        ("&#60;", "<"),
        ("&lt;", "<"),
        ("&#62;", ">"),
        ("&gt;", ">"),
        ("&#38;", "&"),
        ("&amp;", "&"),
    ] {
        value = value.replace(entity, c);
    }
    Ok(value)
}

struct Walk {
    http: reqwest::Client,
    /// `WALK_VIA_CURL=1`: run the printed commands instead of sending with reqwest.
    via_curl: bool,
    color: bool,
    auth: String,
    gw: String,
    client: Option<(String, String)>,
    /// The assignments printed so far: what a person's shell holds at this point.
    session: Vec<String>,
}

impl Walk {
    fn print_command(&self, line: &str) {
        if self.color {
            println!("\n\x1b[1m$ {line}\x1b[0m");
        } else {
            println!("\n$ {line}");
        }
    }

    /// Prints (dimmed) and records `NAME='value'`; later commands use `"$NAME"`.
    fn assign(&mut self, name: &'static str, value: String, note: &str) -> Var {
        let line = format!("{name}={}   # {note}", single_quoted(&value));
        if self.color {
            println!("\x1b[2m$ {line}\x1b[0m");
        } else {
            println!("$ {line}");
        }
        self.session.push(line);
        Var { name, value }
    }

    async fn send(&self, line: &str, req: &Request) -> Result<Answer, String> {
        if self.via_curl {
            return self.run_printed(line).await;
        }
        let res = req
            .reqwest(&self.http)?
            .send()
            .await
            .map_err(|e| format!("request failed: {e}"))?;
        let status = res.status().as_u16();
        let headers = res
            .headers()
            .iter()
            .map(|(n, v)| (n.as_str().to_owned(), v.to_str().unwrap_or("").to_owned()))
            .collect();
        let body = res.text().await.unwrap_or_default();
        Ok(Answer {
            status,
            headers,
            body,
        })
    }

    /// Runs `line` exactly as printed, after the assignments printed so far, as a person would in
    /// one terminal session.
    async fn run_printed(&self, line: &str) -> Result<Answer, String> {
        let mut script = self.session.join("\n");
        script.push('\n');
        script.push_str(line);
        let out = tokio::process::Command::new("bash")
            .arg("-c")
            .arg(&script)
            .output()
            .await
            .map_err(|e| format!("could not run bash: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "the printed command failed ({}): {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        Answer::parse(&String::from_utf8_lossy(&out.stdout))
    }

    /// Prints the request's command, sends it, shows the answer and checks its status.
    async fn step(&self, req: Request, want: u16) -> Result<Answer, String> {
        let line = req.curl()?;
        self.print_command(&line);
        let answer = self.send(&line, &req).await?;
        println!("{}", answer.summary());
        if answer.status != want {
            return Err(format!("expected {want}, got {}", answer.status));
        }
        Ok(answer)
    }

    /// Repeats `req` (printed once) until the gateway answers 401; returns how long that took.
    async fn until_rejected(&self, req: Request) -> Result<Duration, String> {
        let line = req.curl()?;
        self.print_command(&line);
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(5) {
            let answer = self.send(&line, &req).await?;
            if answer.status == 401 {
                println!("{}", answer.summary());
                return Ok(start.elapsed());
            }
        }
        Err("the gateway still accepts the revoked token after 5 s".into())
    }

    /// Logs `user` in; `ACCESS` and `REFRESH` hold the tokens.
    async fn login(&mut self, user: &str, password: &Var) -> Result<(Var, Var), String> {
        let answer = self
            .step(
                Request::post(format!("{}/v1/login", self.auth))
                    .form([("username", user.into()), ("password", password.into())])
                    .note("a login: an access and a refresh token"),
                200,
            )
            .await?;
        let access = self.assign(
            "ACCESS",
            answer.field("access_token")?,
            "the answer's access_token",
        );
        let refresh = self.assign(
            "REFRESH",
            answer.field("refresh_token")?,
            "the answer's refresh_token",
        );
        Ok((access, refresh))
    }

    /// What an app does to sign a user in (the demo page's client, `demo`): the authorization
    /// request gets the hosted sign-in page; the password, posted with the page's CSRF token,
    /// brings the browser back with a code; the code and the PKCE verifier get the tokens.
    async fn code_flow(&mut self, user: &str, password: &Var) -> Result<(), String> {
        const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
        const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
        let gw = self.gw.clone();
        let redirect = format!("{gw}/app/");
        let query = serde_urlencoded::to_string([
            ("response_type", "code"),
            ("client_id", "demo"),
            ("redirect_uri", redirect.as_str()),
            ("scope", "openid profile"),
            ("state", "walk"),
            ("code_challenge", CHALLENGE),
            ("code_challenge_method", "S256"),
        ])
        .map_err(|e| e.to_string())?;
        let page = self
            .step(
                Request::get(format!("{gw}/v1/authorize?{query}"))
                    .note("an app sends the browser here: the hosted sign-in page"),
                200,
            )
            .await?;
        let cookie = page
            .headers("set-cookie")
            .find(|v| v.starts_with("__Host-auth_csrf="))
            .and_then(|v| v.split(';').next())
            .map(str::to_owned)
            .ok_or("the sign-in page set no CSRF cookie")?;
        let (csrf, request) = (hidden(&page.body, "csrf")?, hidden(&page.body, "request")?);
        let cookie = self.assign("CSRF_COOKIE", cookie, "the page's Set-Cookie");
        let csrf = self.assign("CSRF", csrf, "the form's hidden field csrf");
        let request = self.assign("SIGNIN_REQUEST", request, "the form's hidden field request");

        let signed_in = self
            .step(
                Request::post(format!("{gw}/v1/signin"))
                    .cookie(&cookie)
                    .form([
                        ("csrf", (&csrf).into()),
                        ("request", (&request).into()),
                        ("username", user.into()),
                        ("password", password.into()),
                    ])
                    .note("the form posted: back to the app with a code"),
                303,
            )
            .await?;
        let code = signed_in
            .headers("location")
            .next()
            .and_then(|l| l.split_once('?'))
            .and_then(|(_, q)| serde_urlencoded::from_str::<Vec<(String, String)>>(q).ok())
            .and_then(|p| p.into_iter().find(|(k, _)| k == "code"))
            .map(|(_, v)| v)
            .ok_or("no code in the redirect")?;
        let code = self.assign("CODE", code, "the code in the Location header");

        let tokens = self
            .step(
                Request::post(format!("{gw}/v1/token"))
                    .form([
                        ("grant_type", "authorization_code".into()),
                        ("code", (&code).into()),
                        ("redirect_uri", redirect.as_str().into()),
                        ("code_verifier", VERIFIER.into()),
                        ("client_id", "demo".into()),
                    ])
                    .note("the code and the PKCE verifier for the tokens"),
                200,
            )
            .await?;
        tokens.field("id_token")?;
        let access = self.assign(
            "ACCESS",
            tokens.field("access_token")?,
            "the answer's access_token",
        );
        self.step(
            Request::get(format!("{gw}/v1/userinfo"))
                .bearer(&access)
                .note("the user's claims"),
            200,
        )
        .await?;
        Ok(())
    }

    async fn run(&mut self) -> Result<(), String> {
        let (auth, gw) = (self.auth.clone(), self.gw.clone());
        let user = format!("demo-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
        println!(
            "\nEach command runs as printed, in order, in one bash session: the NAME='…' lines set \
             the variables later commands use{}.",
            if self.via_curl {
                " (WALK_VIA_CURL=1: the walkthrough runs them so)"
            } else {
                ""
            }
        );
        let password = self.assign(
            "PASSWORD",
            uuid::Uuid::new_v4().simple().to_string(),
            &format!("{user}'s password, random (development only)"),
        );

        self.step(
            Request::post(format!("{auth}/v1/users"))
                .json([
                    ("username", Json::Str(user.as_str().into())),
                    ("password", Json::Str((&password).into())),
                ])
                .note("a new user"),
            201,
        )
        .await?;

        self.code_flow(&user, &password).await?;

        let (access, refresh) = self.login(&user, &password).await?;

        self.step(
            Request::get(format!("{gw}/api/orders")).note("no token: 401 from the gateway"),
            401,
        )
        .await?;

        let seen = self
            .step(
                Request::get(format!("{gw}/api/orders"))
                    .bearer(&access)
                    .header("x-user-id", "admin")
                    .note("verified locally; the spoofed header is dropped"),
                200,
            )
            .await?
            .json()?;
        if seen["user_id"] == "admin" {
            return Err("the spoofed identity reached the upstream".into());
        }

        self.step(
            Request::get(format!("{gw}/admin/panel"))
                .bearer(&access)
                .note("a user's token: 403"),
            403,
        )
        .await?;

        let refreshing = || {
            Request::post(format!("{auth}/v1/token")).form([
                ("grant_type", "refresh_token".into()),
                ("refresh_token", (&refresh).into()),
            ])
        };
        let answer = self.step(refreshing().note("rotation"), 200).await?;
        let newest = self.assign(
            "NEW_ACCESS",
            answer.field("access_token")?,
            "the answer's access_token",
        );

        self.step(
            refreshing().note("the spent refresh token again: reuse, the whole session is revoked"),
            400,
        )
        .await?;
        let took = self
            .until_rejected(
                Request::get(format!("{gw}/api/orders"))
                    .bearer(&newest)
                    .note("the session's newest access token, until 401: the revocation reached the gateway"),
            )
            .await?;
        println!(
            "rejected {:.1} ms after the replay was answered",
            took.as_secs_f64() * 1000.0
        );

        let (access, _) = self.login(&user, &password).await?;
        self.step(
            Request::get(format!("{gw}/api/orders"))
                .bearer(&access)
                .note("a new session"),
            200,
        )
        .await?;
        self.step(
            Request::post(format!("{auth}/v1/logout"))
                .bearer(&access)
                .note("ends the session"),
            204,
        )
        .await?;
        let took = self
            .until_rejected(
                Request::get(format!("{gw}/api/orders"))
                    .bearer(&access)
                    .note("the logged-out token, until 401"),
            )
            .await?;
        println!(
            "the gateway rejected the logged-out token {:.1} ms after the logout returned",
            took.as_secs_f64() * 1000.0
        );
        if let Some((id, secret)) = self.client.clone() {
            self.service(&id, &secret, &user, &password).await?;
        }
        Ok(())
    }

    /// A service's own token (client credentials) through the gateway, and introspection.
    async fn service(
        &mut self,
        id: &str,
        secret: &str,
        user: &str,
        password: &Var,
    ) -> Result<(), String> {
        let (auth, gw) = (self.auth.clone(), self.gw.clone());
        println!();
        let secret = self.assign(
            "CLIENT_SECRET",
            secret.to_owned(),
            &format!("{id}'s secret, as `auth-service clients create` printed it"),
        );
        let answer = self
            .step(
                Request::post(format!("{auth}/v1/token"))
                    .basic(id, &secret)
                    .form([("grant_type", "client_credentials".into())])
                    .note("a service's own token: no refresh token"),
                200,
            )
            .await?;
        let token = self.assign(
            "CLIENT_TOKEN",
            answer.field("access_token")?,
            "the answer's access_token",
        );

        let seen = self
            .step(
                Request::get(format!("{gw}/internal/jobs"))
                    .bearer(&token)
                    .note("a route for services: principal = \"client\""),
                200,
            )
            .await?
            .json()?;
        if seen["user_id"] != id || seen["principal"] != "client" {
            return Err(format!("the upstream did not see the client {id}: {seen}"));
        }

        let (access, _) = self.login(user, password).await?;
        self.step(
            Request::get(format!("{gw}/internal/jobs"))
                .bearer(&access)
                .note("a user's token: 403, the route is for services"),
            403,
        )
        .await?;

        let v = self
            .step(
                Request::post(format!("{auth}/v1/introspect"))
                    .basic(id, &secret)
                    .form([("token", (&access).into())])
                    .note("RFC 7662, for services that cannot verify locally"),
                200,
            )
            .await?
            .json()?;
        if v["active"] != true || v["principal"] != "user" {
            return Err(format!("introspection did not find the token active: {v}"));
        }

        // With an admin (WALK_ADMIN, WALK_ADMIN_PASSWORD): disabling the client revokes its
        // tokens at the gateway.
        let (Ok(admin), Ok(admin_password)) = (
            std::env::var("WALK_ADMIN"),
            std::env::var("WALK_ADMIN_PASSWORD"),
        ) else {
            return Ok(());
        };
        println!();
        let admin_password = self.assign(
            "ADMIN_PASSWORD",
            admin_password,
            &format!("{admin}'s password, random (development only)"),
        );
        let answer = self
            .step(
                Request::post(format!("{auth}/v1/login"))
                    .form([
                        ("username", admin.as_str().into()),
                        ("password", (&admin_password).into()),
                    ])
                    .note("an admin logs in"),
                200,
            )
            .await?;
        let admin_token = self.assign(
            "ADMIN_ACCESS",
            answer.field("access_token")?,
            "the answer's access_token",
        );
        self.step(
            Request::patch(format!("{auth}/v1/admin/clients/{id}"))
                .bearer(&admin_token)
                .json([("disabled", Json::Raw(Value::Bool(true)))])
                .note("disables the client: its tokens are revoked"),
            200,
        )
        .await?;
        let took = self
            .until_rejected(
                Request::get(format!("{gw}/internal/jobs"))
                    .bearer(&token)
                    .note("the disabled client's token, until 401"),
            )
            .await?;
        println!(
            "the gateway rejected the disabled client's token {:.1} ms after the change returned",
            took.as_secs_f64() * 1000.0
        );
        Ok(())
    }
}

async fn wait(url: &str) -> Result<(), String> {
    let http = reqwest::Client::new();
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(60) {
        if let Ok(r) = http.get(url).send().await
            && r.status() == 200
        {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Err(format!("{url} did not answer 200 within 60 s"))
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.iter().map(String::as_str).collect::<Vec<_>>()[..] {
        ["wait", url] => wait(url).await,
        ["run", auth, gw, ref client @ ..] if matches!(client.len(), 0 | 2) => {
            // Like curl, which the printed commands are: no redirect is followed.
            match reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
            {
                Ok(http) => {
                    Walk {
                        http,
                        via_curl: std::env::var("WALK_VIA_CURL").is_ok_and(|v| v == "1"),
                        color: std::io::stdout().is_terminal()
                            && std::env::var_os("NO_COLOR").is_none(),
                        auth: auth.trim_end_matches('/').to_owned(),
                        gw: gw.trim_end_matches('/').to_owned(),
                        client: match client {
                            [id, secret] => Some(((*id).to_owned(), (*secret).to_owned())),
                            _ => None,
                        },
                        session: Vec::new(),
                    }
                    .run()
                    .await
                }
                Err(e) => Err(e.to_string()),
            }
        }
        _ => Err(
            "usage: walkthrough wait URL | [WALK_VIA_CURL=1] walkthrough run AUTH_URL GATEWAY_URL [CLIENT_ID CLIENT_SECRET]"
                .into(),
        ),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("walkthrough: {e}");
            ExitCode::FAILURE
        }
    }
}
