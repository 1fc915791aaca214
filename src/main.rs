//! The `reelgraph` command line: parses arguments and calls into the library.

use std::process::ExitCode;

/// glibc's allocator was a third of the server's CPU under load (`perf`, read benchmark Q3):
/// a GraphQL response is thousands of small, short-lived allocations across two threads.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use anyhow::Context;
use clap::{Parser, Subcommand};
use reelgraph::{
    Application,
    app::connect_state,
    client,
    config::{Config, ServeArgs, WorkerArgs},
    db,
    users::{create_admin, import, promote_admin},
};

#[derive(Parser)]
#[command(
    name = "reelgraph",
    version,
    about = "GraphQL backend for video creator platforms",
    args_conflicts_with_subcommands = true
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,

    /// With no subcommand, `reelgraph` serves.
    #[command(flatten)]
    serve: ServeArgs,
}

#[derive(Subcommand)]
enum Command {
    /// Serve GraphQL over HTTP (default).
    Serve(ServeArgs),
    /// Run jobs only (any number of workers may share one PostgreSQL).
    Worker(WorkerArgs),
    /// Apply pending database migrations and exit.
    Migrate(Config),
    /// Print the GraphQL schema (SDL); `schema.graphql` is this output.
    Schema,
    /// Administration tasks.
    #[command(subcommand)]
    Admin(AdminCommand),
    /// Submit a JSON movie spec to a running server (`--follow` waits, `-o` downloads the MP4).
    Render(client::RenderArgs),
    /// Follow a job on a running server to its end (`-o` downloads its output).
    ///
    /// Exit status: 0 when the job ends DONE (and its output is saved), 3 when it ends FAILED
    /// or CANCELLED, 130 on Ctrl-C (which stops following, not the job), 1 for any other
    /// failure. A lost connection is tried again for 5 minutes.
    Follow(client::FollowArgs),
    /// Fill a running server with demo creators, videos, highlights and shorts, through its API.
    ///
    /// With no --token or --email, a demo account (demo@reelgraph.local) is registered and its
    /// password printed.
    Seed(client::SeedArgs),
    /// Ask a running server's `/healthz` (exits 0 when it answers 200): the container health check.
    Healthz {
        /// The server's address.
        #[arg(
            long,
            env = "REELGRAPH_HEALTHZ_URL",
            default_value = "http://127.0.0.1:8080/healthz"
        )]
        url: String,
    },
}

#[derive(Subcommand)]
enum AdminCommand {
    /// Create an administrator, or promote the existing account with this email.
    Create {
        #[arg(long)]
        email: String,
        /// Password for a new account (or REELGRAPH_ADMIN_PASSWORD); generated and printed
        /// when neither is given. With `--promote`, only this flag replaces the account's
        /// password (and ends its sessions): a variable left in the environment does not.
        #[arg(long)]
        password: Option<String>,
        #[arg(long)]
        display_name: Option<String>,
        /// Make the existing account with this email an administrator instead (only one you
        /// know is its owner's: anyone may register an address).
        #[arg(long)]
        promote: bool,
        #[command(flatten)]
        config: Config,
    },
    /// Issue a one-time password reset token for an account (24 hours; the owner sets a new
    /// password with `resetPassword`). Prints the token: hand it over by a channel you trust.
    ResetPassword {
        #[arg(long)]
        email: String,
        #[command(flatten)]
        config: Config,
    },
    /// Bring accounts over from another platform, with the password hashes they have (bcrypt or
    /// Argon2): nobody resets a password, and each hash becomes Argon2id at its next sign-in.
    ///
    /// FILE (or `-` for standard input) is JSON Lines, one account per line: `email` and
    /// `passwordHash`, optionally `displayName` (or `username`), `role` (ADMIN, CREATOR,
    /// VIEWER; default VIEWER), `isActive` (default true), `isVerified` (default false),
    /// `credits` (default 0), `createdAt` (RFC 3339, or without an offset for UTC),
    /// `avatarUrl`, `onboardingCompleted` and `notificationPreferences` (`digestEnabled`,
    /// `digestFrequency`). Fields may be named in snake_case too (`password_hash`); any other
    /// key is refused. Every line is checked first; one bad line imports nothing. Emails that
    /// already have an account are left unchanged, so a rerun is harmless.
    ImportUsers {
        /// The JSON Lines file, or `-` for standard input.
        file: std::path::PathBuf,
        /// Check the file and report what would be imported, without writing anything.
        #[arg(long)]
        dry_run: bool,
        #[command(flatten)]
        config: Config,
    },
}

/// The environment variable behind a rejected value, when the value came from one (the flag
/// was not on the command line and its variable is set).
fn from_environment(err: &clap::Error) -> Option<String> {
    use clap::{
        CommandFactory,
        error::{ContextKind, ContextValue},
    };
    let Some(ContextValue::String(arg)) = err.get(ContextKind::InvalidArg) else {
        return None;
    };
    // "--workers <WORKERS>" → "workers"
    let long = arg.strip_prefix("--")?.split([' ', '=']).next()?;
    let args: Vec<String> = std::env::args_os()
        .skip(1)
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let flag = format!("--{long}");
    if args
        .iter()
        .any(|a| *a == flag || a.starts_with(&format!("{flag}=")))
    {
        return None;
    }
    // The (sub)command that was run: its own flag of that name, not another's.
    let root = Cli::command();
    let mut command = &root;
    for word in args.iter().filter(|a| !a.starts_with('-')) {
        match command.find_subcommand(word) {
            Some(sub) => command = sub,
            None => break,
        }
    }
    let variable = command
        .get_arguments()
        .find(|a| a.get_long() == Some(long))
        .and_then(|a| a.get_env())
        .map(|env| env.to_string_lossy().into_owned())?;
    std::env::var_os(&variable).is_some().then_some(variable)
}

fn init_tracing() {
    use tracing_subscriber::{EnvFilter, fmt};
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn,sea_orm=warn,sea_orm_migration=warn"));
    let json = std::env::var("REELGRAPH_LOG_FORMAT").is_ok_and(|f| f.eq_ignore_ascii_case("json"));
    let builder = fmt().with_env_filter(filter).with_writer(std::io::stderr);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let refused = |err: clap::Error| -> ! {
        let note = from_environment(&err);
        if let Some(variable) = note {
            // clap names the flag (`--workers <WORKERS>`); the value came from a variable.
            let _ = err.print();
            eprintln!("note: the value was read from the environment variable {variable}");
            std::process::exit(err.exit_code());
        }
        err.exit()
    };
    let matches = <Cli as clap::CommandFactory>::command()
        .try_get_matches()
        .unwrap_or_else(|err| refused(err));
    let mut cli = <Cli as clap::FromArgMatches>::from_arg_matches(&matches)
        .unwrap_or_else(|err| refused(err));
    // Which credentials a client command uses depends on where each came from.
    if let Some((_, command)) = matches.subcommand() {
        match &mut cli.command {
            Some(Command::Render(args)) => args.server.prefer_typed(command),
            Some(Command::Follow(args)) => args.server.prefer_typed(command),
            Some(Command::Seed(args)) => args.server.prefer_typed(command),
            _ => {}
        }
    }
    // Read from the environment only (logging starts before the settings are read).
    if let Ok(format) = std::env::var("REELGRAPH_LOG_FORMAT")
        && !matches!(format.to_ascii_lowercase().as_str(), "" | "text" | "json")
    {
        eprintln!("error: REELGRAPH_LOG_FORMAT must be `text` or `json` (got `{format}`)");
        return ExitCode::from(2);
    }
    if !matches!(cli.command, Some(Command::Schema)) {
        init_tracing();
    }
    match run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            // With JSON logs, log pipelines read the reason from the log stream too.
            if std::env::var("REELGRAPH_LOG_FORMAT").is_ok_and(|f| f.eq_ignore_ascii_case("json")) {
                tracing::error!(error = format!("{err:#}"), "stopped");
            }
            eprintln!("error: {err:#}");
            match err.downcast_ref::<reelgraph::client::Stopped>() {
                Some(stopped) => ExitCode::from(stopped.exit_code()),
                None => ExitCode::FAILURE,
            }
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        None => serve(cli.serve).await,
        Some(Command::Serve(args)) => serve(args).await,
        Some(Command::Worker(WorkerArgs { listen, mut config })) => {
            // A worker answers no GraphQL: no read cache, nor its listener checks every second.
            config.read_cache_secs = 0;
            anyhow::ensure!(
                config.is_postgres(),
                "`reelgraph worker` shares jobs with servers through PostgreSQL: set DATABASE_URL \
                 (in embedded mode `reelgraph serve` already runs the jobs)"
            );
            // A worker exists to run jobs, most of which are ffmpeg's: without it every render
            // and probe would fail, one by one, so it does not start.
            reelgraph::render::ffmpeg::check()
                .await
                .map_err(|problem| anyhow::anyhow!("a worker needs ffmpeg: {problem}"))?;
            let public_url = match config.public_url.clone() {
                Some(url) => url,
                // Links to S3 objects are signed for S3's own (public) endpoint.
                None if config.uses_s3() => {
                    format!("http://{}", reelgraph::config::DEFAULT_LISTEN)
                }
                None => {
                    let guess = format!("http://{}", reelgraph::config::DEFAULT_LISTEN);
                    tracing::warn!(
                        "PUBLIC_URL is not set: links this worker makes to local storage \
                         (webhook outputUrl) assume the server is at {guess}"
                    );
                    guess
                }
            };
            let state = connect_state(config, &public_url).await?;
            db::migrate(&state.db).await?;
            reelgraph::app::run_worker(state, listen).await
        }
        Some(Command::Healthz { url }) => {
            let response = reqwest::Client::builder()
                .timeout(std::time::Duration::from_secs(3))
                .build()?
                .get(&url)
                .send()
                .await
                .map_err(|err| anyhow::anyhow!("{url} did not answer: {err}"))?;
            let status = response.status();
            let body = response.text().await.unwrap_or_default();
            anyhow::ensure!(status.is_success(), "{url} answered {status}: {body}");
            println!("{body}");
            Ok(())
        }
        Some(Command::Migrate(config)) => {
            db::migrate(&db::connect(&config, None).await?).await?;
            tracing::info!("migrations applied");
            Ok(())
        }
        Some(Command::Schema) => {
            print!("{}", reelgraph::graphql::sdl());
            Ok(())
        }
        Some(Command::Render(args)) => client::render_command(args).await,
        Some(Command::Follow(args)) => client::follow_command(args).await,
        Some(Command::Seed(args)) => client::seed_command(args).await,
        Some(Command::Admin(AdminCommand::Create {
            email,
            password,
            display_name,
            promote,
            config,
        })) => {
            let db = db::connect(&config, None).await?;
            db::migrate(&db).await?;
            if promote {
                // `REELGRAPH_ADMIN_PASSWORD` is not read here: only `--password` sets one.
                let promoted = promote_admin(&db, &email, password.as_deref())
                    .await
                    .map_err(|e| for_operator(e, &[]))
                    .context("promoting the account")?;
                let (email, ended) = (promoted.email, promoted.sessions_ended);
                match password {
                    Some(_) => println!(
                        "{email} is now an administrator with the new password ({ended} sessions ended)"
                    ),
                    None => println!("{email} is now an administrator (password unchanged)"),
                }
                return Ok(());
            }
            let password = password.or_else(|| {
                std::env::var("REELGRAPH_ADMIN_PASSWORD")
                    .ok()
                    .filter(|p| !p.is_empty())
            });
            let generated = password.is_none();
            let password = password.unwrap_or_else(reelgraph::auth::password::generate_password);
            let password_flag = [("password", "--password (or REELGRAPH_ADMIN_PASSWORD)")];
            let email = create_admin(&db, &email, &password, display_name.as_deref())
                .await
                .map_err(|e| for_operator(e, &password_flag))
                .context("creating the administrator")?;
            if generated {
                println!("created administrator {email} with password: {password}");
            } else {
                println!("created administrator {email}");
            }
            Ok(())
        }
        Some(Command::Admin(AdminCommand::ResetPassword { email, config })) => {
            let db = db::connect(&config, None).await?;
            db::migrate(&db).await?;
            let normalized = reelgraph::auth::normalize_email("email", &email)
                .map_err(|e| anyhow::anyhow!("--email {}", e.public_message()))?;
            let user = reelgraph::auth::find_account(&db, &email)
                .await
                .map_err(|e| for_operator(e, &[]))?
                .with_context(|| format!("there is no account with the email {normalized}"))?;
            let issued = reelgraph::auth::reset::issue(&db, user.id, None)
                .await
                .map_err(|e| for_operator(e, &[]))
                .context("issuing the reset token")?;
            println!(
                "password reset token for {} (valid until {}, once):\n{}\n\nIts owner \
                 sets a new password with: mutation {{ resetPassword(token: \"…\", newPassword: \"…\") \
                 {{ accessToken }} }}",
                issued.user.email,
                issued
                    .expires_at
                    .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                issued.token
            );
            if !user.is_active {
                println!("note: the account is disabled; the token works once it is enabled again");
            }
            Ok(())
        }
        Some(Command::Admin(AdminCommand::ImportUsers {
            file,
            dry_run,
            config,
        })) => import_users(&file, dry_run, config).await,
    }
}

/// An error of an operator's command as its operator reads it: a bad or conflicting value
/// names its flag (`flags` maps a field to how the command takes it; else `--field`), and an
/// internal error says what went wrong: the console is the operator's, not a client's.
fn for_operator(err: reelgraph::error::AppError, flags: &[(&str, &str)]) -> anyhow::Error {
    use reelgraph::error::AppError;
    let flag = |field: &str| {
        flags
            .iter()
            .find(|(name, _)| *name == field)
            .map_or_else(|| format!("--{field}"), |(_, flag)| (*flag).to_owned())
    };
    match err {
        AppError::Internal(detail) => anyhow::anyhow!("{detail}"),
        AppError::BadInput { field, message }
        | AppError::Conflict {
            field: Some(field),
            message,
        } => anyhow::anyhow!("{}: {message}", flag(&field)),
        other => anyhow::anyhow!("{}", other.public_message()),
    }
}

async fn import_users(file: &std::path::Path, dry_run: bool, config: Config) -> anyhow::Result<()> {
    let text = if file.as_os_str() == "-" {
        std::io::read_to_string(std::io::stdin()).context("reading standard input")?
    } else {
        std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?
    };
    let users = import::parse(&text, chrono::Utc::now()).map_err(|problems| {
        anyhow::anyhow!(
            "{} has problems; nothing was imported:\n  {}",
            file.display(),
            problems.join("\n  ")
        )
    })?;
    if dry_run
        && !config.is_postgres()
        && config
            .database_url
            .as_deref()
            .is_none_or(|u| u.trim().is_empty())
    {
        let path = config.data_dir.join("reelgraph.db");
        anyhow::ensure!(
            path.exists(),
            "there is no database at {} to check against (a dry run creates nothing)",
            path.display()
        );
    }
    let db = db::connect(&config, None).await?;
    if dry_run {
        // A dry run writes nothing, migrations included.
        let pending = db::pending_migrations(&db).await?;
        anyhow::ensure!(
            pending == 0,
            "the database lacks {pending} migration(s): run `reelgraph migrate` first (a dry run \
             changes nothing)"
        );
    } else {
        db::migrate(&db).await?;
    }
    let report = import::import(&db, users, dry_run)
        .await
        .map_err(|e| for_operator(e, &[]))
        .context("importing accounts")?;
    let verb = if dry_run { "would import" } else { "imported" };
    println!(
        "{verb} {} account(s); {} of them with a bcrypt or older Argon2 hash, replaced by \
         Argon2id at the first sign-in",
        report.imported.len(),
        report.to_upgrade
    );
    if !report.existing.is_empty() {
        const SHOWN: usize = 20;
        let mut listed = report.existing[..report.existing.len().min(SHOWN)].join(", ");
        if report.existing.len() > SHOWN {
            listed.push_str(&format!(" and {} more", report.existing.len() - SHOWN));
        }
        println!(
            "left unchanged {} account(s) that already exist: {listed}",
            report.existing.len()
        );
    }
    Ok(())
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    // Said, not refused: an environment shared by servers and workers (a compose file's
    // common block) sets REELGRAPH_WORKERS for the workers.
    if args.no_worker && args.config.workers.is_some() {
        tracing::warn!(
            "REELGRAPH_WORKERS is not used: REELGRAPH_NO_WORKER runs no worker pool in this server"
        );
    }
    let embedded = !args.config.is_postgres();
    let storage = if args.config.uses_s3() {
        "s3"
    } else {
        "local folder"
    };
    let app = Application::build(args).await?;
    let addr = app.local_addr();
    tracing::info!(
        database = if embedded {
            "sqlite (embedded)"
        } else {
            "postgresql"
        },
        storage,
        "Reelgraph listening on http://{addr} — GraphiQL at http://{addr}/graphiql"
    );
    app.run_until_stopped().await
}
