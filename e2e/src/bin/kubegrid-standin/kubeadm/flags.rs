//! Command-line flags as kubeadm (cobra/pflag) takes them: `--name value`, `--name=value`,
//! `-n value`, and booleans `--name` or `--name=true|false`.

use crate::Error;

/// Flags and positional arguments of one command line.
#[derive(Debug, Default)]
pub struct Flags {
    values: Vec<(String, String)>,
    /// Arguments that are not flags.
    pub positional: Vec<String>,
}

impl Flags {
    /// Parses `args`; a flag outside `with_value` and `booleans` is an error naming them.
    pub fn parse(args: &[String], with_value: &[&str], booleans: &[&str]) -> Result<Flags, Error> {
        let mut flags = Flags::default();
        let mut it = args.iter();
        while let Some(arg) = it.next() {
            let Some(flag) = arg.strip_prefix("--").or_else(|| arg.strip_prefix('-')) else {
                flags.positional.push(arg.clone());
                continue;
            };
            let (name, inline) = match flag.split_once('=') {
                Some((n, v)) => (n, Some(v.to_string())),
                None => (flag, None),
            };
            let value = if with_value.contains(&name) {
                match inline.or_else(|| it.next().cloned()) {
                    Some(v) => v,
                    None => return Err(Error::Usage(format!("flag needs an argument: --{name}"))),
                }
            } else if booleans.contains(&name) {
                match inline.as_deref() {
                    None | Some("true") => "true".to_string(),
                    Some("false") => "false".to_string(),
                    Some(v) => {
                        return Err(Error::Usage(format!(
                            "--{name}={v}: expected true or false"
                        )));
                    }
                }
            } else {
                let mut known: Vec<&str> = with_value.iter().chain(booleans).copied().collect();
                known.sort_unstable();
                return Err(Error::Usage(format!(
                    "unknown flag: {arg} (the stand-in takes here: --{})",
                    known.join(", --")
                )));
            };
            flags.values.push((name.to_string(), value));
        }
        Ok(flags)
    }

    /// The last value given for `name`.
    pub fn value(&self, name: &str) -> Option<&str> {
        self.values
            .iter()
            .rev()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// Whether boolean `name` is set (and not `=false`).
    pub fn has(&self, name: &str) -> bool {
        self.value(name) == Some("true")
    }

    /// Comma-separated values of every `name` flag.
    pub fn list(&self, name: &str) -> Vec<String> {
        self.values
            .iter()
            .filter(|(n, _)| n == name)
            .flat_map(|(_, v)| v.split(','))
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect()
    }
}
