//! Command-line flags shared by server binaries: `--listen ADDR`, `--data DIR`,
//! `--config FILE`, `--admin-listen ADDR`, `--help`.

use std::net::SocketAddr;
use std::path::PathBuf;

/// A command line that could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ArgsError {
    /// A flag that takes a value was last.
    #[error("{flag} needs a value")]
    MissingValue {
        /// The flag.
        flag: &'static str,
    },
    /// `--listen` or `--admin-listen` with something that is not a socket address.
    #[error("{flag} {value:?} is not an address such as 127.0.0.1:8787")]
    BadAddress {
        /// The flag.
        flag: &'static str,
        /// What was given.
        value: String,
    },
    /// An argument no flag matches.
    #[error("unknown argument {argument:?}; see --help")]
    Unknown {
        /// The argument.
        argument: String,
    },
}

/// Parsed flags.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Args {
    /// `--listen ADDR`.
    pub listen: Option<SocketAddr>,
    /// `--data DIR`.
    pub data: Option<PathBuf>,
    /// `--config FILE`.
    pub config: Option<PathBuf>,
    /// `--admin-listen ADDR`: the admin API and console (off unless this or the
    /// configuration's `durable.admin.listen` says).
    pub admin_listen: Option<SocketAddr>,
    /// `--help` was given.
    pub help: bool,
}

/// The text of `--help` for a binary called `name`.
pub fn usage(name: &str) -> String {
    format!(
        "usage: {name} [--listen ADDR] [--data DIR] [--config FILE] [--admin-listen ADDR]\n\n\
         --listen ADDR         address to listen on (default 127.0.0.1:8787)\n\
         --data DIR            data folder (default ./.durable)\n\
         --config FILE         wrangler.jsonc, wrangler.json or wrangler.toml\n\
         --admin-listen ADDR   serve the admin API there (off by default; its bearer token\n\
         \x20                     is made in the data folder, as admin.token)\n\
         \n\
         Logs go to stderr; set RUST_LOG (e.g. RUST_LOG=debug) for more detail.\n"
    )
}

impl Args {
    /// Parses flags (without the program name).
    pub fn parse(args: impl IntoIterator<Item = String>) -> Result<Args, ArgsError> {
        let mut parsed = Args::default();
        let mut args = args.into_iter();
        while let Some(arg) = args.next() {
            let (flag, inline) = match arg.split_once('=') {
                Some((flag, value)) if flag.starts_with("--") => {
                    (flag.to_owned(), Some(value.to_owned()))
                }
                _ => (arg.clone(), None),
            };
            let mut value = |flag: &'static str| {
                inline
                    .clone()
                    .or_else(|| args.next())
                    .ok_or(ArgsError::MissingValue { flag })
            };
            match flag.as_str() {
                "--listen" => {
                    let text = value("--listen")?;
                    parsed.listen = Some(text.parse().map_err(|_| ArgsError::BadAddress {
                        flag: "--listen",
                        value: text.clone(),
                    })?);
                }
                "--admin-listen" => {
                    let text = value("--admin-listen")?;
                    parsed.admin_listen =
                        Some(text.parse().map_err(|_| ArgsError::BadAddress {
                            flag: "--admin-listen",
                            value: text.clone(),
                        })?);
                }
                "--data" => parsed.data = Some(value("--data")?.into()),
                "--config" => parsed.config = Some(value("--config")?.into()),
                "--help" | "-h" => parsed.help = true,
                other => {
                    return Err(ArgsError::Unknown {
                        argument: other.to_owned(),
                    });
                }
            }
        }
        Ok(parsed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Args, ArgsError> {
        Args::parse(args.iter().map(|s| (*s).to_owned()))
    }

    #[test]
    fn flags_parse_in_both_forms_and_mistakes_are_named() {
        let args = parse(&[
            "--listen",
            "127.0.0.1:0",
            "--data=/tmp/d",
            "--config",
            "w.toml",
            "--admin-listen=127.0.0.1:9",
        ])
        .unwrap();
        assert_eq!(args.admin_listen, Some("127.0.0.1:9".parse().unwrap()));
        assert_eq!(args.listen, Some("127.0.0.1:0".parse().unwrap()));
        assert_eq!(args.data, Some(PathBuf::from("/tmp/d")));
        assert_eq!(args.config, Some(PathBuf::from("w.toml")));
        assert_eq!(
            parse(&["--listen", "localhost"]),
            Err(ArgsError::BadAddress {
                flag: "--listen",
                value: "localhost".into()
            })
        );
        assert_eq!(
            parse(&["--data"]),
            Err(ArgsError::MissingValue { flag: "--data" })
        );
        let unknown = parse(&["--port", "1"]).unwrap_err();
        assert!(unknown.to_string().contains("--port"), "{unknown}");
        assert!(parse(&["--help"]).unwrap().help);
    }
}
