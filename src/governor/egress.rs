//! Egresses: the ways out. The default route, each `--source-address`, each `--proxy`. Every request of a
//! clip leaves through one egress: yt-dlp's page requests and the relay's media requests alike, because
//! YouTube binds media URLs to the IP that extracted them.

use crate::tools::ytdlp::EgressArgs;
use anyhow::Context;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

/// How to leave the machine.
#[derive(Debug, Clone, PartialEq)]
pub enum Route {
    Default,
    Source(IpAddr),
    Proxy(String),
}

#[derive(Debug, Clone)]
pub struct Egress {
    /// A short name without secrets, for the display and the journal.
    pub name: String,
    pub route: Route,
    pub cookies: Option<PathBuf>,
}

impl Egress {
    pub fn ytdlp_args(&self) -> EgressArgs {
        EgressArgs {
            source_address: match &self.route {
                Route::Source(ip) => Some(ip.to_string()),
                _ => None,
            },
            proxy: match &self.route {
                Route::Proxy(p) => Some(p.clone()),
                _ => None,
            },
            cookies: self.cookies.clone(),
        }
    }

    /// The relay's upstream client for this egress.
    pub fn client(&self) -> anyhow::Result<reqwest::Client> {
        let mut b = reqwest::Client::builder()
            .connect_timeout(std::time::Duration::from_secs(30))
            .read_timeout(std::time::Duration::from_secs(60));
        match &self.route {
            Route::Default => {}
            Route::Source(ip) => b = b.local_address(*ip),
            Route::Proxy(p) => b = b.proxy(reqwest::Proxy::all(p).with_context(|| format!("bad proxy {}", self.name))?),
        }
        Ok(b.build()?)
    }
}

/// The egresses a run uses: the addresses and proxies given, or the default route when none is.
pub fn from_options(
    sources: &[IpAddr],
    proxies: &[String],
    proxies_file: Option<&Path>,
    cookies: &[PathBuf],
) -> anyhow::Result<Vec<Egress>> {
    let mut routes: Vec<Route> = sources.iter().map(|ip| Route::Source(*ip)).collect();
    routes.extend(proxies.iter().cloned().map(Route::Proxy));
    if let Some(path) = proxies_file {
        let text = std::fs::read_to_string(path).with_context(|| format!("failed to read {}", path.display()))?;
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            anyhow::ensure!(line.contains("://"), "{}:{}: not a proxy URL: `{line}`", path.display(), i + 1);
            routes.push(Route::Proxy(line.to_string()));
        }
    }
    if routes.is_empty() {
        routes.push(Route::Default);
    }
    anyhow::ensure!(
        cookies.len() <= 1 || cookies.len() == routes.len(),
        "give one --cookies file for all egresses or one per egress ({} egresses, {} cookie files)",
        routes.len(),
        cookies.len()
    );
    let mut seen = std::collections::HashSet::new();
    let mut out = Vec::new();
    for (i, route) in routes.into_iter().enumerate() {
        let name = route_name(&route);
        anyhow::ensure!(seen.insert(name.clone()), "egress {name} is given twice");
        let cookies = cookies.get(if cookies.len() == 1 { 0 } else { i }).cloned();
        out.push(Egress { name, route, cookies });
    }
    Ok(out)
}

/// A proxy's name keeps scheme, host and port, never credentials.
fn route_name(route: &Route) -> String {
    match route {
        Route::Default => "default".into(),
        Route::Source(ip) => ip.to_string(),
        Route::Proxy(url) => {
            let (scheme, rest) = url.split_once("://").unwrap_or(("proxy", url));
            let host = rest.rsplit_once('@').map(|(_, h)| h).unwrap_or(rest);
            format!("{scheme}://{}", host.trim_end_matches('/'))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_options_is_the_default_route() {
        let e = from_options(&[], &[], None, &[]).unwrap();
        assert_eq!(e.len(), 1);
        assert_eq!(e[0].route, Route::Default);
        assert_eq!(e[0].ytdlp_args().source_address, None);
    }

    #[test]
    fn names_hide_proxy_credentials() {
        let table = [
            ("http://user:secret@proxy.example:3128/", "http://proxy.example:3128"),
            ("socks5://127.0.0.1:1080", "socks5://127.0.0.1:1080"),
        ];
        for (url, want) in table {
            assert_eq!(route_name(&Route::Proxy(url.into())), want);
        }
    }

    #[test]
    fn cookies_are_shared_or_one_each() {
        let ips: Vec<IpAddr> = vec!["127.0.0.2".parse().unwrap(), "127.0.0.3".parse().unwrap()];
        let one = from_options(&ips, &[], None, &["c.txt".into()]).unwrap();
        assert!(one.iter().all(|e| e.cookies == Some("c.txt".into())));
        let each = from_options(&ips, &[], None, &["a.txt".into(), "b.txt".into()]).unwrap();
        assert_eq!(each[1].cookies, Some("b.txt".into()));
        assert!(from_options(&ips, &[], None, &["a".into(), "b".into(), "c".into()]).is_err());
        assert!(from_options(&[ips[0], ips[0]], &[], None, &[]).is_err());
        let args = each[0].ytdlp_args();
        assert_eq!(args.source_address.as_deref(), Some("127.0.0.2"));
    }

    #[test]
    fn proxies_file_is_read_with_line_numbers() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("proxies.txt");
        std::fs::write(&f, "# mine\nhttp://127.0.0.1:3128\n\nnot a proxy\n").unwrap();
        let err = from_options(&[], &[], Some(&f), &[]).unwrap_err();
        assert!(err.to_string().contains("proxies.txt:4"), "{err}");
    }
}
