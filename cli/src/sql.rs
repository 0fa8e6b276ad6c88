//! `lendfusion sql`: one statement, or an interactive shell, on an embedded session or
//! through a coordinator's Flight SQL port.

use std::io::{IsTerminal, Read, Write};
use std::process::ExitCode;

use clap::Args;
use datafusion::error::DataFusionError;
use datafusion::execution::SendableRecordBatchStream;
use datafusion::execution::context::SessionContext;
use lendfusion_coordinator::client::{FlightSqlConnection, RemoteError};
use lendfusion_core::diagnose::explain_error;
use lendfusion_core::error_kind::classify;
use lendfusion_core::query::stream_sql;
use lendfusion_core::{LendfusionConfig, session_context};

use crate::CliResult;
use crate::output::{Format, PrintError, print_stream};
use crate::remote::RemoteArgs;

/// Options of `lendfusion sql`.
#[derive(Debug, Args)]
pub struct SqlArgs {
    /// Dataset root to query embedded: a path, file:///path or s3://bucket/prefix
    /// (default: `data` from the config or LENDFUSION_DATA).
    #[arg(long)]
    data: Option<String>,
    #[command(flatten)]
    remote: RemoteArgs,
    /// Log in to --coordinator as this user (password from LENDFUSION_PASSWORD).
    #[arg(long)]
    user: Option<String>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    format: Format,
    /// The statement to run; without it, an interactive shell (or statements from stdin).
    /// It may start with `-` (a `-- comment`); `--` before it also ends the options.
    #[arg(allow_hyphen_values = true)]
    statement: Option<String>,
}

/// Where statements run.
enum Backend {
    /// An embedded session on the dataset.
    Embedded(SessionContext),
    /// A coordinator's Flight SQL port.
    Remote(FlightSqlConnection),
}

impl Backend {
    async fn stream(&self, sql: &str) -> Result<SendableRecordBatchStream, DataFusionError> {
        match self {
            Backend::Embedded(ctx) => stream_sql(ctx, sql).await,
            Backend::Remote(connection) => connection.query(sql).await,
        }
    }

    async fn explain(&self, e: DataFusionError) -> DataFusionError {
        match self {
            Backend::Embedded(ctx) => explain_error(ctx, e).await,
            Backend::Remote(_) => e,
        }
    }
}

pub async fn run(args: SqlArgs, mut config: LendfusionConfig) -> CliResult {
    if let Some(data) = args.data {
        config.data = Some(data);
    }
    let user = match args.user {
        Some(user) => {
            let password = std::env::var("LENDFUSION_PASSWORD")
                .map_err(|_| "--user needs the password in LENDFUSION_PASSWORD")?;
            Some((user, password))
        }
        None => None,
    };
    let ctx = match args.remote.connect(user).await? {
        Some(connection) => Backend::Remote(connection),
        None => Backend::Embedded(session_context(&config).await?),
    };
    match args.statement {
        Some(statement) => {
            run_statement(&ctx, &statement, args.format).await?;
            Ok(ExitCode::SUCCESS)
        }
        None if std::io::stdin().is_terminal() => shell(&ctx, args.format).await,
        None => {
            let mut script = String::new();
            std::io::stdin().read_to_string(&mut script)?;
            for statement in split_statements(&script) {
                run_statement(&ctx, &statement, args.format).await?;
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Run one statement and print its result on stdout.
async fn run_statement(
    ctx: &Backend,
    statement: &str,
    format: Format,
) -> Result<usize, Box<dyn std::error::Error + Send + Sync>> {
    let stream = ctx.stream(statement).await.map_err(remote_message)?;
    let stdout = std::io::stdout();
    let mut lock = stdout.lock();
    match print_stream(stream, format, &mut lock).await {
        Ok(rows) => Ok(rows),
        Err(PrintError::Query(e)) => Err(remote_message(ctx.explain(e).await)),
        Err(e) => Err(Box::new(e)),
    }
}

/// A server's error as the server phrased it (with its gRPC code), others as their plain
/// message (the root of the engine's error chain, as a server would send it).
fn remote_message(e: DataFusionError) -> Box<dyn std::error::Error + Send + Sync> {
    match e {
        DataFusionError::External(inner) if inner.is::<RemoteError>() => inner,
        other => Box::new(classify(&other)),
    }
}

/// Split a script on `;` outside quotes and comments; empty statements are dropped.
fn split_statements(script: &str) -> Vec<String> {
    let mut out = vec![];
    let mut current = String::new();
    let mut chars = script.chars().peekable();
    let mut quote: Option<char> = None;
    while let Some(c) = chars.next() {
        match quote {
            Some(q) => {
                current.push(c);
                if c == q {
                    quote = None;
                }
            }
            None => match c {
                '\'' | '"' => {
                    quote = Some(c);
                    current.push(c);
                }
                '-' if chars.peek() == Some(&'-') => {
                    for c in chars.by_ref() {
                        if c == '\n' {
                            current.push('\n');
                            break;
                        }
                    }
                }
                ';' => out.push(std::mem::take(&mut current)),
                _ => current.push(c),
            },
        }
    }
    out.push(current);
    out.into_iter()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect()
}

/// The interactive shell: statements end with `;`, `\q` quits, `\dt` lists tables.
async fn shell(ctx: &Backend, format: Format) -> CliResult {
    let mut editor = rustyline::DefaultEditor::new()?;
    let history =
        std::env::var_os("HOME").map(|h| std::path::PathBuf::from(h).join(".lendfusion_history"));
    if let Some(path) = &history {
        let _ = editor.load_history(path);
    }
    eprintln!(
        "lendfusion {} — end statements with `;`, \\dt lists tables, \\q quits",
        env!("CARGO_PKG_VERSION")
    );
    let mut buffer = String::new();
    loop {
        let prompt = if buffer.is_empty() {
            "lendfusion> "
        } else {
            "        ... "
        };
        let line = match editor.readline(prompt) {
            Ok(line) => line,
            Err(rustyline::error::ReadlineError::Interrupted) => {
                buffer.clear();
                continue;
            }
            Err(rustyline::error::ReadlineError::Eof) => break,
            Err(e) => return Err(Box::new(e)),
        };
        let trimmed = line.trim();
        if buffer.is_empty() {
            match trimmed {
                "\\q" | "quit" | "exit" => break,
                "\\dt" => {
                    let _ = editor.add_history_entry(trimmed);
                    report(run_statement(ctx, "SHOW TABLES", format).await);
                    continue;
                }
                "" => continue,
                _ => {}
            }
        }
        buffer.push_str(&line);
        buffer.push('\n');
        if trimmed.ends_with(';') {
            let _ = editor.add_history_entry(buffer.trim());
            for statement in split_statements(&buffer) {
                report(run_statement(ctx, &statement, format).await);
            }
            buffer.clear();
        }
    }
    if let Some(path) = &history {
        let _ = editor.save_history(path);
    }
    Ok(ExitCode::SUCCESS)
}

fn report(result: Result<usize, Box<dyn std::error::Error + Send + Sync>>) {
    let _ = std::io::stdout().flush();
    match result {
        Ok(rows) => eprintln!("({rows} rows)"),
        Err(e) => eprintln!("error: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::split_statements;

    #[test]
    fn splits_outside_quotes_and_comments() {
        let s = split_statements("SELECT ';' AS a; -- x; y\nSELECT 2;;");
        assert_eq!(s, vec!["SELECT ';' AS a", "SELECT 2"]);
    }
}
