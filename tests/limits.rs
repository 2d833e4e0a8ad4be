//! End to end: AWS throttling and rate limits by key, in process and shared through a real Redis.

mod common;

use common::*;
use std::time::{Duration, Instant};

fn statuses(gw: &Gateway, path: &str, n: usize, headers: &[(&str, &str)]) -> Vec<u16> {
    (0..n)
        .map(|_| request(gw.port, "GET", path, headers, b"").status)
        .collect()
}

#[test]
fn route_settings_override_stage_defaults_and_backend_is_spared() {
    let b = Backend::start(Behaviour::Echo);
    let dir = ConfDir::new(&[
        ("integrations/i0.json", integration(&b.url(), "")),
        ("routes/a.json", route("GET /a", "i0", "")),
        ("routes/b.json", route("GET /b", "i0", "")),
        (
            "stages/default.json",
            r#"{"Name":"$default","DefaultRouteSettings":{"ThrottlingBurstLimit":2,"ThrottlingRateLimit":0.001},"RouteSettings":{"GET /b":{"ThrottlingBurstLimit":4}}}"#.to_string(),
        ),
    ]);
    let gw = Gateway::start(&dir.path);
    assert_eq!(statuses(&gw, "/a", 4, &[]), [200, 200, 429, 429]);
    assert_eq!(statuses(&gw, "/b", 6, &[]), [200, 200, 200, 200, 429, 429]);
    let r = gw.get("/a");
    assert_eq!(
        (r.status, r.text()),
        (429, r#"{"message":"Too Many Requests"}"#.into())
    );
    assert_eq!(
        b.requests().len(),
        6,
        "throttled requests reached the backend"
    );
}

#[test]
fn bucket_refills_at_the_configured_rate() {
    let b = Backend::start(Behaviour::Echo);
    let dir = ConfDir::new(&[
        ("integrations/i0.json", integration(&b.url(), "")),
        ("routes/a.json", route("GET /a", "i0", "")),
        ("stages/default.json", r#"{"Name":"$default","DefaultRouteSettings":{"ThrottlingBurstLimit":1,"ThrottlingRateLimit":10}}"#.to_string()),
    ]);
    let gw = Gateway::start(&dir.path);
    assert_eq!(gw.get("/a").status, 200);
    let t0 = Instant::now();
    assert_eq!(gw.get("/a").status, 429);
    // One token comes back every 100 ms: poll until it has (bounded), and check it was not early.
    loop {
        if gw.get("/a").status == 200 {
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(3),
            "bucket never refilled"
        );
    }
    assert!(
        t0.elapsed() >= Duration::from_millis(50),
        "refilled after {:?}",
        t0.elapsed()
    );
}

#[test]
fn rate_limit_by_key_isolates_keys_and_reports_headers() {
    let b = Backend::start(Behaviour::Echo);
    let dir = ConfDir::new(&[
        ("integrations/i0.json", integration(&b.url(), "")),
        (
            "routes/a.json",
            route(
                "GET /a",
                "i0",
                r#""Policies":{"RateLimit":{"Calls":2,"PeriodSeconds":60,"Key":"$request.header.X-Api-Key"}}"#,
            ),
        ),
    ]);
    let gw = Gateway::start(&dir.path);
    let key_a = [("X-Api-Key", "a")];
    let r = request(gw.port, "GET", "/a", &key_a, b"");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("ratelimit-limit"), Some("2"));
    assert_eq!(r.header("ratelimit-remaining"), Some("1"));
    let reset: u64 = r.header("ratelimit-reset").unwrap().parse().unwrap();
    assert!((1..=60).contains(&reset));
    assert_eq!(r.header("retry-after"), None);
    assert_eq!(
        request(gw.port, "GET", "/a", &key_a, b"").header("ratelimit-remaining"),
        Some("0")
    );
    let r = request(gw.port, "GET", "/a", &key_a, b"");
    assert_eq!(
        (r.status, r.text()),
        (429, r#"{"message":"Too Many Requests"}"#.into())
    );
    assert!(r
        .header("retry-after")
        .is_some_and(|v| v.parse::<u64>().unwrap() >= 1));
    assert_eq!(r.header("ratelimit-remaining"), Some("0"));
    // Another key has its own counter.
    assert_eq!(
        request(gw.port, "GET", "/a", &[("X-Api-Key", "b")], b"").status,
        200
    );
    assert_eq!(b.requests().len(), 3);
}

#[test]
fn rate_limit_counters_survive_a_reload() {
    let b = Backend::start(Behaviour::Echo);
    let dir = ConfDir::new(&[
        ("integrations/i0.json", integration(&b.url(), "")),
        (
            "routes/a.json",
            route(
                "GET /a",
                "i0",
                r#""Policies":{"RateLimit":{"Calls":1,"PeriodSeconds":60,"Key":"$context.identity.sourceIp"}}"#,
            ),
        ),
    ]);
    let gw = Gateway::start(&dir.path);
    assert_eq!(statuses(&gw, "/a", 2, &[]), [200, 429]);
    dir.write(&[("routes/b.json", route("GET /b", "i0", ""))]);
    gw.signal("HUP");
    gw.wait_log("configuration reloaded", 1);
    assert_eq!(gw.get("/b").status, 200);
    assert_eq!(gw.get("/a").status, 429, "a reload reset the counters");
}

fn redis_conf(redis: &Redis, backend: &Backend) -> ConfDir {
    redis_conf_named(redis, &backend.url(), "shop")
}

/// Route `GET /a`: 3 calls a minute per `X-Team`, counted in `redis` under api `name`.
fn redis_conf_named(redis: &Redis, backend_url: &str, name: &str) -> ConfDir {
    ConfDir::new(&[
        ("api.json", format!(r#"{{"Name":"{name}"}}"#)),
        (
            "gateway.json",
            format!(
                r#"{{"RateLimitStore":{{"Type":"redis","Url":"{}"}}}}"#,
                redis.url()
            ),
        ),
        ("integrations/i0.json", integration(backend_url, "")),
        (
            "routes/a.json",
            route(
                "GET /a",
                "i0",
                r#""Policies":{"RateLimit":{"Calls":3,"PeriodSeconds":60,"Key":"$request.header.X-Team"}}"#,
            ),
        ),
    ])
}

#[test]
fn two_gateways_share_one_redis_limit() {
    let redis = Redis::start();
    let b = Backend::start(Behaviour::Echo);
    let dir = redis_conf(&redis, &b);
    let gw1 = Gateway::start(&dir.path);
    let gw2 = Gateway::start(&dir.path);
    let team = [("X-Team", "blue")];
    let mut codes = Vec::new();
    for i in 0..6 {
        let gw = if i % 2 == 0 { &gw1 } else { &gw2 };
        codes.push(request(gw.port, "GET", "/a", &team, b"").status);
    }
    assert_eq!(codes, [200, 200, 200, 429, 429, 429]);
    assert_eq!(
        request(gw2.port, "GET", "/a", &[("X-Team", "red")], b"").status,
        200
    );
}

/// One request whose `X-Team` header is `value`, bytes as they are (not necessarily UTF-8).
fn team_request(port: u16, value: &[u8]) -> Response {
    let mut head = b"GET /a HTTP/1.1\r\nHost: gateway.test\r\nX-Team: ".to_vec();
    head.extend_from_slice(value);
    head.extend_from_slice(b"\r\n\r\n");
    let mut conn = Conn::open(port);
    conn.send_raw(&head);
    conn.read_response(false)
}

/// Every key in `redis`, as bytes.
fn redis_keys(redis: &Redis) -> Vec<Vec<u8>> {
    let client = redis::Client::open(redis.url()).expect("redis url");
    let mut conn = client.get_connection().expect("connect to redis");
    redis::cmd("KEYS").arg("*").query(&mut conn).expect("KEYS")
}

#[test]
fn client_sized_and_non_utf8_keys_stay_short_and_distinct_in_redis() {
    let redis = Redis::start();
    // apigate's own echo: it takes header values that are not UTF-8.
    let echo = Echo::start();
    let dir = redis_conf_named(&redis, &echo.url(), "shop");
    let gw = Gateway::start(&dir.path);

    // 9 KB of header value (AWS's head quota is 10240 bytes): counted, but never a 9 KB
    // Redis key.
    let long = vec![b'L'; 9_000];
    let codes: Vec<u16> = (0..4)
        .map(|_| team_request(gw.port, &long).status)
        .collect();
    assert_eq!(codes, [200, 200, 200, 429]);
    // Bytes that are not UTF-8 keep their own counters (a lossy conversion merged them).
    for value in [&b"\xff"[..], b"\xfe", b"\xef\xbf\xbd", b"\xff\xff"] {
        let r = team_request(gw.port, value);
        assert_eq!(
            (r.status, r.header("ratelimit-remaining")),
            (200, Some("2")),
            "{value:?}"
        );
    }
    // A value that looks like a digest is digested too, so it cannot stand for another
    // value; a short printable one stays readable for operators.
    for value in [&b"#0123"[..], b"blue"] {
        let r = team_request(gw.port, value);
        assert_eq!(r.header("ratelimit-remaining"), Some("2"), "{value:?}");
    }

    let keys = redis_keys(&redis);
    assert_eq!(keys.len(), 7, "{keys:?}");
    for k in &keys {
        assert!(k.len() < 128, "a {} byte key", k.len());
        assert!(
            k.starts_with(b"apigate:rl:shop:route|$default|GET /a:"),
            "{}",
            String::from_utf8_lossy(k)
        );
    }
    assert!(keys.iter().any(|k| k.ends_with(b":blue")));
    assert!(!keys.iter().any(|k| k.ends_with(b":#0123")));
}

#[test]
fn two_apis_sharing_one_redis_keep_their_own_counters() {
    let redis = Redis::start();
    let b = Backend::start(Behaviour::Echo);
    let shop = redis_conf_named(&redis, &b.url(), "shop");
    let blog = redis_conf_named(&redis, &b.url(), "blog");
    let gw_shop = Gateway::start(&shop.path);
    let gw_blog = Gateway::start(&blog.path);
    let team = [("X-Team", "blue")];
    assert_eq!(statuses(&gw_shop, "/a", 3, &team), [200, 200, 200]);
    assert_eq!(statuses(&gw_blog, "/a", 4, &team), [200, 200, 200, 429]);
    assert_eq!(statuses(&gw_shop, "/a", 1, &team), [429]);
}

const STORE_ERRORS: &str = "apigate_ratelimit_store_errors_total";

fn store_errors(gw: &Gateway) -> f64 {
    metric_value(&gw.scrape(), STORE_ERRORS).unwrap_or(-1.0)
}

#[test]
fn redis_outage_fails_open_at_once_counts_each_call_and_recovers() {
    let mut redis = Redis::start();
    let b = Backend::start(Behaviour::Echo);
    let dir = redis_conf(&redis, &b);
    let gw = Gateway::start(&dir.path);
    let team = [("X-Team", "green")];
    assert_eq!(statuses(&gw, "/a", 4, &team), [200, 200, 200, 429]);
    assert_eq!(store_errors(&gw), 0.0);

    // Redis restarts while idle: the first call on the dead connection is retried on a new
    // one at once, so it is counted (the restarted Redis is empty) and nothing fails open.
    redis.stop();
    redis.restart();
    let r = request(gw.port, "GET", "/a", &team, b"");
    assert_eq!(
        (r.status, r.header("ratelimit-remaining")),
        (200, Some("2"))
    );
    assert_eq!(store_errors(&gw), 0.0);

    // Redis is gone: every call is served, uncounted (a full window), without waiting
    // for Redis, and each one is counted in the metric, exactly.
    redis.stop();
    let t0 = Instant::now();
    for i in 0..30 {
        let r = request(gw.port, "GET", "/a", &team, b"");
        assert_eq!(
            (r.status, r.header("ratelimit-remaining")),
            (200, Some("3")),
            "call {i} while Redis is down"
        );
    }
    assert!(
        t0.elapsed() < Duration::from_secs(3),
        "a dead Redis stalled requests: {:?}",
        t0.elapsed()
    );
    assert_eq!(store_errors(&gw), 30.0);
    let out = gw.output();
    assert_eq!(
        out.matches("allowing requests uncounted").count(),
        1,
        "one warning per 10 s:\n{out}"
    );

    // Redis is back (empty): the gateway notices by itself and counting resumes. Calls
    // still failing open meanwhile carry a full window, and each is counted.
    redis.restart();
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut failed_open = 0;
    loop {
        let r = request(gw.port, "GET", "/a", &team, b"");
        assert_eq!(r.status, 200);
        match r.header("ratelimit-remaining") {
            Some("3") => failed_open += 1,
            Some("2") => break,
            other => panic!("unexpected RateLimit-Remaining {other:?}"),
        }
        assert!(Instant::now() < deadline, "counting never resumed");
    }
    assert_eq!(statuses(&gw, "/a", 3, &team), [200, 200, 429]);
    assert_eq!(store_errors(&gw), 30.0 + f64::from(failed_open));
    gw.wait_log("answers again", 1);
}

/// Stage limit 4 a minute per IP and route limit 3 per 5 s per header: the fourth call is
/// refused by the route limit, but retrying after 5 s would meet the exhausted stage
/// limit, so Retry-After covers the minute.
#[test]
fn retry_after_covers_every_exhausted_limit() {
    let b = Backend::start(Behaviour::Echo);
    let dir = ConfDir::new(&[
        ("integrations/i0.json", integration(&b.url(), "")),
        (
            "routes/a.json",
            route(
                "GET /a",
                "i0",
                r#""Policies":{"RateLimit":{"Calls":3,"PeriodSeconds":5,"Key":"$request.header.X-Team"}}"#,
            ),
        ),
        (
            "stages/default.json",
            r#"{"Name":"$default","Policies":{"RateLimit":{"Calls":4,"PeriodSeconds":60,"Key":"$context.identity.sourceIp"}}}"#.to_string(),
        ),
    ]);
    let gw = Gateway::start(&dir.path);
    let team = [("X-Team", "red")];
    assert_eq!(statuses(&gw, "/a", 3, &team), [200, 200, 200]);
    let r = request(gw.port, "GET", "/a", &team, b"");
    assert_eq!(r.status, 429);
    let retry: u64 = r
        .header("retry-after")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    assert!((55..=60).contains(&retry), "Retry-After {retry}");
    assert_eq!(r.header("ratelimit-limit"), Some("4"));
    assert_eq!(
        r.header("ratelimit-reset"),
        Some(retry.to_string().as_str())
    );
}

#[test]
fn answers_refused_before_counting_still_report_the_limit_and_cost_nothing() {
    let b = Backend::start(Behaviour::Echo);
    let limit = r#""RateLimit":{"Calls":5,"PeriodSeconds":60,"Key":"$context.identity.sourceIp"}"#;
    let dir = ConfDir::new(&[
        ("integrations/i0.json", integration(&b.url(), "")),
        (
            "routes/t.json",
            route("GET /t", "i0", &format!(r#""Policies":{{{limit}}}"#)),
        ),
        (
            "routes/f.json",
            route(
                "GET /f",
                "i0",
                &format!(
                    r#""Policies":{{{limit},"IpFilter":{{"Action":"forbid","Addresses":["127.0.0.1"]}}}}"#
                ),
            ),
        ),
        (
            "stages/default.json",
            r#"{"Name":"$default","RouteSettings":{"GET /t":{"ThrottlingRateLimit":0,"ThrottlingBurstLimit":1}}}"#
                .to_string(),
        ),
    ]);
    let gw = Gateway::start(&dir.path);
    let r = gw.get("/t");
    assert_eq!(
        (r.status, r.header("ratelimit-remaining")),
        (200, Some("4"))
    );
    // Throttled: the limit's state is reported, nothing more is counted.
    for _ in 0..3 {
        let r = gw.get("/t");
        assert_eq!(r.status, 429);
        assert_eq!(r.header("ratelimit-limit"), Some("5"));
        assert_eq!(r.header("ratelimit-remaining"), Some("4"));
        assert_eq!(r.header("retry-after"), None, "throttling is not the limit");
    }
    // Forbidden by the IP filter: same.
    let r = gw.get("/f");
    assert_eq!(r.status, 403);
    assert_eq!(r.header("ratelimit-remaining"), Some("5"));
}
