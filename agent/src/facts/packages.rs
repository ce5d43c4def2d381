//! Installed package versions, from dpkg or rpm, in one query for all names.

use std::collections::BTreeMap;

use crate::{
    error::Result,
    exec::{self, which},
};

/// A package database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PackageDb {
    /// Debian family.
    Dpkg,
    /// RPM family.
    Rpm,
}

impl PackageDb {
    /// The host's database: dpkg when present, else rpm when present (an RPM host may carry
    /// rpm tools alongside, a Debian host rarely the reverse).
    pub fn detect() -> Option<Self> {
        if which("dpkg-query").is_some() {
            Some(Self::Dpkg)
        } else if which("rpm").is_some() {
            Some(Self::Rpm)
        } else {
            None
        }
    }

    /// "dpkg" or "rpm".
    pub fn name(self) -> &'static str {
        match self {
            Self::Dpkg => "dpkg",
            Self::Rpm => "rpm",
        }
    }

    /// Installed version of each of `names` that is installed.
    pub fn installed(self, names: &[&str]) -> Result<BTreeMap<String, String>> {
        if names.is_empty() {
            return Ok(BTreeMap::new());
        }
        match self {
            Self::Dpkg => {
                let mut argv = vec![
                    "dpkg-query",
                    "-W",
                    "-f",
                    "${Package}\t${db:Status-Abbrev}\t${Version}\n",
                ];
                argv.extend(names);
                let ran = exec::run(&argv)?;
                // 1 means "some names are unknown", which is an answer, not a failure.
                if !ran.success() && ran.status.and_then(|s| s.code()) != Some(1) {
                    return Err(ran.failed("the dpkg database may be locked or damaged"));
                }
                Ok(parse_dpkg_query(&ran.stdout))
            }
            Self::Rpm => {
                let mut argv = vec!["rpm", "-q", "--qf", "%{NAME}\t%{VERSION}-%{RELEASE}\n"];
                argv.extend(names);
                // rpm exits with the number of names not installed; stdout says which are.
                Ok(parse_rpm_query(&exec::run(&argv)?.stdout))
            }
        }
    }
}

/// `name\tstatus\tversion` lines; only "ii" (installed, no error) counts.
pub fn parse_dpkg_query(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter_map(|l| {
            let mut f = l.split('\t');
            let (name, status, version) = (f.next()?, f.next()?, f.next()?);
            // Multi-arch names come back as "name:arch"; the plan names packages plainly.
            let name = name.split(':').next()?;
            (status.trim_end() == "ii" && !version.is_empty())
                .then(|| (name.to_string(), version.to_string()))
        })
        .collect()
}

/// `name\tversion-release` lines; "package x is not installed" lines have no tab.
pub fn parse_rpm_query(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter_map(|l| l.split_once('\t'))
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_dpkg_answers() {
        let out = "containerd\tii \t1.6.20~ds1-1+b1\nrunc\trc \t1.1.5+ds1-1\n\
                   libc6:amd64\tii \t2.36-9\nbroken\tiF \t1.0\n";
        let got = parse_dpkg_query(out);
        assert_eq!(
            got,
            BTreeMap::from([
                ("containerd".to_string(), "1.6.20~ds1-1+b1".to_string()),
                ("libc6".to_string(), "2.36-9".to_string()),
            ])
        );
    }

    #[test]
    fn reads_rpm_answers() {
        let out = "containerd\t1.6.20-1.el9\npackage runc is not installed\n";
        assert_eq!(
            parse_rpm_query(out),
            BTreeMap::from([("containerd".to_string(), "1.6.20-1.el9".to_string())])
        );
    }
}
