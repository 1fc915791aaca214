//! `reelgraph render`, `reelgraph follow` and `reelgraph seed`: a command-line client of a
//! running server.
//!
//! It uses only the public API, as an SPA does: GraphQL over HTTP for sign-in, uploads and
//! mutations ([`Api`]), and a `graphql-transport-ws` subscription for progress
//! ([`follow`]). So it works the same against `cargo run` on a laptop and a deployment
//! behind TLS (`https://` and `wss://`).

mod follow;
mod render;
mod seed;

use std::fmt;

use anyhow::Context as _;
use serde_json::{Value, json};

pub use follow::JobUpdate;
pub use render::{FollowArgs, RenderArgs, follow_command, render_command};
pub use seed::{DEMO_EMAIL, SeedArgs, seed_command};

/// Where the server is and who the client is, shared by the commands.
#[derive(clap::Args, Clone, Debug)]
pub struct ServerArgs {
    /// The server's base URL (its GraphQL endpoint, `…/graphql`, works too).
    #[arg(long, env = "REELGRAPH_URL", default_value = "http://127.0.0.1:8080")]
    pub server: String,

    /// An access token (from `login` or `register`).
    /// With --email too, the one typed on the command line wins over the other's variable
    /// (`REELGRAPH_TOKEN`, `REELGRAPH_EMAIL`); typed both, or both from the environment,
    /// the token is used.
    #[arg(long, env = "REELGRAPH_TOKEN", hide_env_values = true)]
    pub token: Option<String>,

    /// Sign in with this account instead of a token (the password from --password or
    /// REELGRAPH_PASSWORD). The session is refreshed when the access token expires, so a long
    /// render can be followed to the end.
    #[arg(long, env = "REELGRAPH_EMAIL")]
    pub email: Option<String>,

    /// The password for --email.
    #[arg(long, env = "REELGRAPH_PASSWORD", hide_env_values = true)]
    pub password: Option<String>,
}

impl ServerArgs {
    /// Keeps the credentials the user typed when the others came from the environment: a
    /// `--email` on the command line wins over `REELGRAPH_TOKEN` (the token is used otherwise).
    /// `matches` are the client command's own.
    pub fn prefer_typed(&mut self, matches: &clap::ArgMatches) {
        use clap::parser::ValueSource;
        let typed = |id: &str| matches.value_source(id) == Some(ValueSource::CommandLine);
        if self.token.is_some() && self.email.is_some() && typed("email") && !typed("token") {
            self.token = None;
        }
    }
}

/// How a client command stopped short of success, for its exit status.
#[derive(Debug)]
pub enum Stopped {
    /// The job ended `FAILED` or `CANCELLED`: exit status 3.
    JobNotDone(String),
    /// Ctrl-C stopped following (the job goes on): exit status 130.
    Interrupted(String),
}

impl Stopped {
    pub fn exit_code(&self) -> u8 {
        match self {
            Self::JobNotDone(_) => 3,
            Self::Interrupted(_) => 130,
        }
    }
}

impl std::fmt::Display for Stopped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::JobNotDone(why) | Self::Interrupted(why) => f.write_str(why),
        }
    }
}

impl std::error::Error for Stopped {}

/// `url` without a user name or password in it, for messages.
pub(crate) fn without_credentials(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) if !parsed.username().is_empty() || parsed.password().is_some() => {
            let _ = parsed.set_username("");
            let _ = parsed.set_password(None);
            parsed.to_string()
        }
        _ => url.to_owned(),
    }
}

/// How many times a renewal refused for too many at once is tried again, and the longest wait
/// it takes for one (a longer one is reported).
const RENEWAL_WAITS: u32 = 3;
const MAX_RENEWAL_WAIT_SECS: u64 = 60;

/// A GraphQL error the server answered with: its message, `extensions.code`, for bad input
/// `extensions.field`, and for a refusal of too many requests `extensions.retryAfter`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub message: String,
    pub code: Option<String>,
    pub field: Option<String>,
    pub retry_after: Option<u64>,
}

impl ApiError {
    fn from_errors(errors: &Value) -> Vec<Self> {
        errors
            .as_array()
            .map(|errors| {
                errors
                    .iter()
                    .map(|error| Self {
                        message: error["message"].as_str().unwrap_or("error").to_owned(),
                        code: error["extensions"]["code"].as_str().map(str::to_owned),
                        field: error["extensions"]["field"].as_str().map(str::to_owned),
                        retry_after: error["extensions"]["retryAfter"].as_u64(),
                    })
                    .collect()
            })
            .unwrap_or_default()
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(field) = &self.field {
            write!(f, "{field}: ")?;
        }
        f.write_str(&self.message)?;
        if let Some(code) = &self.code {
            write!(f, " ({code})")?;
        }
        Ok(())
    }
}

/// The errors of one answer, one per line.
#[derive(Debug)]
pub struct ApiErrors(pub Vec<ApiError>);

impl fmt::Display for ApiErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, error) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{error}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ApiErrors {}

/// How the client proves who it is.
#[derive(Debug, Clone)]
enum Credentials {
    Token(String),
    /// Signed in with a password: the refresh token renews the access token.
    Session {
        access: String,
        refresh: String,
    },
}

/// A GraphQL-over-HTTP connection to one server.
pub struct Api {
    http: reqwest::Client,
    base: String,
    /// Replaced when the session is renewed, which any call may do.
    credentials: std::sync::Mutex<Credentials>,
}

const SESSION_FIELDS: &str = "accessToken refreshToken";

impl Api {
    /// Checks the URL and signs in as `args` say.
    pub async fn connect(args: &ServerArgs) -> anyhow::Result<Self> {
        let mut api = Self::anonymous(&args.server)?;
        anyhow::ensure!(
            api.sign_in(args).await?,
            "sign in first: pass --token (or set REELGRAPH_TOKEN), or --email with \
             --password (or REELGRAPH_PASSWORD)"
        );
        Ok(api)
    }

    /// A client of `server` that has not signed in.
    pub fn anonymous(server: &str) -> anyhow::Result<Self> {
        let typed = server.trim_end_matches('/');
        let url = reqwest::Url::parse(typed)
            .with_context(|| format!("--server {:?} is not a URL", without_credentials(typed)))?;
        anyhow::ensure!(
            matches!(url.scheme(), "http" | "https"),
            "--server must be an http:// or https:// URL, not {:?}",
            without_credentials(typed)
        );
        // As parsed: `HTTP://Host` is `http://host`, which the WebSocket URL is made from. The
        // GraphQL endpoint itself (`…/graphql`), pasted from a browser, names the same server.
        let mut url = url;
        if let Some(base_path) = url.path().trim_end_matches('/').strip_suffix("/graphql") {
            let base_path = base_path.to_owned();
            url.set_path(&base_path);
        }
        let base = url.as_str().trim_end_matches('/').to_owned();
        let http = reqwest::Client::builder()
            .user_agent(concat!("reelgraph-cli/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(std::time::Duration::from_secs(10))
            // A server that accepted the connection and then went silent: give up rather than
            // hang (the server's own request limit is 60 s; downloads keep reading).
            .read_timeout(std::time::Duration::from_secs(120))
            .build()
            .context("starting the HTTP client")?;
        Ok(Self {
            http,
            base,
            credentials: std::sync::Mutex::new(Credentials::Token(String::new())),
        })
    }

    /// Signs in with the token or the password `args` give; `false` when they give neither.
    pub async fn sign_in(&mut self, args: &ServerArgs) -> anyhow::Result<bool> {
        let credentials = match (&args.token, &args.email, &args.password) {
            (Some(token), _, _) => Credentials::Token(token.trim().to_owned()),
            (None, Some(email), Some(password)) => {
                let data = self
                    .call_anonymous(
                        &format!(
                            "mutation($email: String!, $password: String!) \
                             {{ login(email: $email, password: $password) {{ {SESSION_FIELDS} }} }}"
                        ),
                        json!({ "email": email, "password": password }),
                    )
                    .await
                    .context("signing in")?;
                session_of(&data["login"])?
            }
            // Checked here, not by clap: clap counts an email from the environment as given,
            // and refused a typed --token next to a REELGRAPH_EMAIL without a password.
            (None, Some(_), None) => anyhow::bail!(
                "--email needs a password: pass --password (or set REELGRAPH_PASSWORD)"
            ),
            (None, None, _) => return Ok(false),
        };
        self.set_credentials(credentials);
        Ok(true)
    }

    /// Creates an account and signs in as it.
    pub async fn register(
        &mut self,
        email: &str,
        password: &str,
        display_name: &str,
    ) -> anyhow::Result<()> {
        let data = self
            .call_anonymous(
                &format!(
                    "mutation($input: RegisterInput!) {{ register(input: $input) \
                     {{ {SESSION_FIELDS} }} }}"
                ),
                json!({ "input": { "email": email, "password": password, "displayName": display_name } }),
            )
            .await?;
        self.set_credentials(session_of(&data["register"])?);
        Ok(())
    }

    fn credentials(&self) -> Credentials {
        self.credentials
            .lock()
            .map(|c| c.clone())
            .unwrap_or_else(|poisoned| poisoned.into_inner().clone())
    }

    fn set_credentials(&self, credentials: Credentials) {
        match self.credentials.lock() {
            Ok(mut current) => *current = credentials,
            Err(poisoned) => *poisoned.into_inner() = credentials,
        }
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    pub fn access_token(&self) -> String {
        match self.credentials() {
            Credentials::Token(token) => token,
            Credentials::Session { access, .. } => access,
        }
    }

    /// Trades the refresh token for a new session. `false` when signed in with a bare token,
    /// which cannot be renewed. Refused for too many renewals at once (several commands on one
    /// account, or a short token lifetime), it waits as long as the server says, a few times.
    pub async fn refresh(&self) -> anyhow::Result<bool> {
        let Credentials::Session { refresh, .. } = self.credentials() else {
            return Ok(false);
        };
        let mut waits = 0;
        let data = loop {
            let answer = self
                .call_anonymous(
                    &format!(
                        "mutation($token: String!) {{ refreshSession(refreshToken: $token) \
                         {{ {SESSION_FIELDS} }} }}"
                    ),
                    json!({ "token": refresh }),
                )
                .await;
            let wait = answer
                .as_ref()
                .err()
                .and_then(|err| err.downcast_ref::<ApiErrors>())
                .and_then(|errors| {
                    errors
                        .0
                        .iter()
                        .find(|e| e.code.as_deref() == Some("RATE_LIMITED"))
                })
                .and_then(|e| e.retry_after)
                .filter(|&secs| secs <= MAX_RENEWAL_WAIT_SECS && waits < RENEWAL_WAITS);
            match wait {
                Some(secs) => {
                    waits += 1;
                    tokio::time::sleep(std::time::Duration::from_secs(secs)).await;
                }
                None => break answer.context("renewing the session")?,
            }
        };
        self.set_credentials(session_of(&data["refreshSession"])?);
        Ok(true)
    }

    /// Uploads `bytes` to a presigned URL with the headers the server asked for
    /// (`uploadHeaders`).
    pub async fn put_presigned(
        &self,
        url: &str,
        headers: &Value,
        bytes: Vec<u8>,
    ) -> anyhow::Result<()> {
        let mut put = self.http.put(url).body(bytes);
        if let Some(headers) = headers.as_object() {
            for (name, value) in headers {
                if let Some(value) = value.as_str() {
                    put = put.header(name, value);
                }
            }
        }
        let response = put.send().await?;
        anyhow::ensure!(
            response.status().is_success(),
            "the storage answered HTTP {}",
            response.status()
        );
        Ok(())
    }

    /// Runs one operation as the signed-in user; its `data`, or the errors it answered with
    /// ([`ApiErrors`]). Signed in with a password, an operation refused because the access
    /// token expired renews the session and runs once more (long `seed` and `render` runs
    /// outlive a token).
    pub async fn call(&self, query: &str, variables: Value) -> anyhow::Result<Value> {
        let token = self.access_token();
        let answer = self
            .send(
                query,
                variables.clone(),
                (!token.is_empty()).then_some(&token),
            )
            .await;
        let unauthenticated = answer.as_ref().err().is_some_and(|err| {
            err.downcast_ref::<ApiErrors>().is_some_and(|errors| {
                errors
                    .0
                    .iter()
                    .any(|e| e.code.as_deref() == Some("UNAUTHENTICATED"))
            })
        });
        // A renewal that fails leaves the server's own answer as the error.
        if unauthenticated && self.refresh().await.unwrap_or(false) {
            let token = self.access_token();
            return self.send(query, variables, Some(&token)).await;
        }
        answer
    }

    /// Runs one operation without a token (signing in, renewing an expired session).
    async fn call_anonymous(&self, query: &str, variables: Value) -> anyhow::Result<Value> {
        self.send(query, variables, None).await
    }

    async fn send(
        &self,
        query: &str,
        variables: Value,
        token: Option<&str>,
    ) -> anyhow::Result<Value> {
        let endpoint = format!("{}/graphql", self.base);
        let mut request = self
            .http
            .post(&endpoint)
            .header(reqwest::header::ACCEPT, "application/json")
            .json(&json!({ "query": query, "variables": variables }));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request
            .send()
            .await
            .with_context(|| format!("cannot reach {}", without_credentials(&endpoint)))?;
        let status = response.status();
        let body: Value = match response.json().await {
            Ok(body) => body,
            Err(_) => anyhow::bail!(
                "{} answered HTTP {status}, not a GraphQL response",
                without_credentials(&endpoint)
            ),
        };
        if let Some(errors) = body.get("errors") {
            let errors = ApiError::from_errors(errors);
            if !errors.is_empty() {
                return Err(ApiErrors(errors).into());
            }
        }
        match body.get("data") {
            Some(data) if !data.is_null() => Ok(data.clone()),
            _ => anyhow::bail!(
                "{} answered HTTP {status} without data",
                without_credentials(&endpoint)
            ),
        }
    }
}

fn session_of(payload: &Value) -> anyhow::Result<Credentials> {
    match (
        payload["accessToken"].as_str(),
        payload["refreshToken"].as_str(),
    ) {
        (Some(access), Some(refresh)) => Ok(Credentials::Session {
            access: access.to_owned(),
            refresh: refresh.to_owned(),
        }),
        _ => anyhow::bail!("the server's sign-in answer has no tokens"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_read_code_and_field() {
        let errors = ApiError::from_errors(&json!([
            { "message": "must be greater than 0", "extensions": { "code": "BAD_USER_INPUT", "field": "input.spec.scenes.0.duration" } },
            { "message": "boom" },
        ]));
        assert_eq!(
            ApiErrors(errors).to_string(),
            "input.spec.scenes.0.duration: must be greater than 0 (BAD_USER_INPUT)\nboom"
        );
        assert!(ApiError::from_errors(&json!("not a list")).is_empty());
    }
}
