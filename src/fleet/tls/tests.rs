use super::*;

/// (the --db value, what tokio-postgres is given, the mode, the CA)
type Case = (&'static str, &'static str, SslMode, Option<Roots>);

#[test]
fn the_tls_settings_come_out_of_the_url_and_tokio_postgres_gets_the_rest() {
    let file = |p: &str| Some(Roots::File(PathBuf::from(p)));
    let cases: Vec<Case> = vec![
        ("postgres://u@h/db", "postgres://u@h/db", SslMode::Prefer, None),
        ("postgres://u@h/db?sslmode=disable", "postgres://u@h/db?sslmode=disable", SslMode::Disable, None),
        ("postgres://u@h/db?sslmode=require", "postgres://u@h/db?sslmode=require", SslMode::Require, None),
        (
            "postgres://u:pw@h:5433/db?sslmode=verify-full&sslrootcert=/etc/kdl/ca.pem",
            "postgres://u:pw@h:5433/db?sslmode=require",
            SslMode::VerifyFull,
            file("/etc/kdl/ca.pem"),
        ),
        (
            "postgresql://h/db?sslrootcert=%2Ftmp%2Fmy%20ca.pem&application_name=x&sslmode=verify-ca",
            "postgresql://h/db?application_name=x&sslmode=require",
            SslMode::VerifyCa,
            file("/tmp/my ca.pem"),
        ),
        (
            "postgres://h/db?sslmode=verify-full&sslrootcert=system",
            "postgres://h/db?sslmode=require",
            SslMode::VerifyFull,
            Some(Roots::System),
        ),
        (
            "postgres://h/db?sslrootcert=/ca.pem&sslmode=require",
            "postgres://h/db?sslmode=require",
            SslMode::Require,
            file("/ca.pem"),
        ),
        (
            "host=h user=u sslmode=verify-full sslrootcert='/a dir/ca.pem' dbname=d",
            "host=h user=u sslmode=require dbname=d",
            SslMode::VerifyFull,
            file("/a dir/ca.pem"),
        ),
        ("host=h password='x y' sslmode=prefer", "host=h password='x y' sslmode=prefer", SslMode::Prefer, None),
        ("host = h sslmode = disable", "host = h sslmode = disable", SslMode::Disable, None),
    ];
    for (url, rest, mode, roots) in cases {
        let (got, settings) = split(url).unwrap_or_else(|e| panic!("{url}: {e:#}"));
        assert_eq!((got.as_str(), settings), (rest, TlsSettings { mode, roots }), "{url}");
        // What is left is tokio-postgres's to parse.
        got.parse::<tokio_postgres::Config>().unwrap_or_else(|e| panic!("{url} -> {got}: {e}"));
    }
}

#[test]
fn bad_tls_settings_are_refused_with_what_to_do() {
    let home = tempfile::tempdir().unwrap();
    let cases = [
        ("postgres://h/db?sslmode=verify-all", "sslmode must be disable, prefer, require, verify-ca or verify-full"),
        ("postgres://h/db?sslmode=allow", "sslmode=allow is not supported"),
        ("postgres://h/db?sslmode=verify-full", "add sslrootcert=/path/ca.pem"),
        ("host=h sslmode=verify-ca", "add sslrootcert=/path/ca.pem"),
        ("postgres://h/db?sslmode=require&sslrootcert=", "sslrootcert is empty"),
        ("host=h sslrootcert='/ca.pem", "no closing quote"),
        ("host=h sslmode", "`sslmode` has no `=value`"),
    ];
    for (url, says) in cases {
        let e = split_at_home(url, Some(home.path())).err().unwrap_or_else(|| panic!("{url} is refused"));
        assert!(format!("{e:#}").contains(says), "{url}: {e:#}");
    }
    // libpq's default CA file, when it is there.
    std::fs::create_dir(home.path().join(".postgresql")).unwrap();
    std::fs::write(home.path().join(".postgresql/root.crt"), "").unwrap();
    let (_, settings) = split_at_home("postgres://h/db?sslmode=verify-full", Some(home.path())).unwrap();
    assert_eq!(settings.roots, Some(Roots::File(home.path().join(".postgresql/root.crt"))));
}

#[test]
fn a_ca_file_must_hold_a_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty.pem");
    std::fs::write(&empty, "not a certificate\n").unwrap();
    let missing = dir.path().join("missing.pem");
    for (path, says) in [(&empty, "holds no PEM certificate"), (&missing, "cannot read its certificates")] {
        let settings = TlsSettings { mode: SslMode::VerifyFull, roots: Some(Roots::File(path.clone())) };
        let e = MakeRustls::new(settings).err().expect("refused");
        assert!(format!("{e:#}").contains(says), "{}: {e:#}", path.display());
        assert!(e.chain().any(|c| c.is::<Usage>()), "the user's to fix (exit 2): {e:#}");
    }
    // The public CAs, and no CA at all, need no file.
    for roots in [Some(Roots::System), None] {
        MakeRustls::new(TlsSettings { mode: SslMode::Require, roots }).unwrap();
    }
}

#[test]
fn certificate_names_are_shown_plain() {
    for (shown, plain) in [
        ("DnsName(\"db.example.org\")", "db.example.org"),
        ("IpAddress(127.0.0.1)", "127.0.0.1"),
        ("IpAddress(::1)", "::1"),
        ("DirectoryName", "DirectoryName"),
    ] {
        assert_eq!(plain_name(shown), plain);
    }
}
