//! Route selection: apigate's matchit tries against a straightforward linear scan in the
//! style of the seed's `route_selector` (exact, then variable, then greedy).

use apigate::routing::{RouteKey, Router, Segment};
use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion};
use http::Method;

/// `n` route keys over n/4 services: exact, one variable, two variables and greedy routes.
fn route_keys(n: usize) -> Vec<String> {
    let mut keys = Vec::with_capacity(n);
    let mut i = 0;
    while keys.len() < n {
        let s = i;
        keys.push(format!("GET /svc{s}/items"));
        keys.push(format!("GET /svc{s}/items/{{id}}"));
        keys.push(format!("POST /svc{s}/items/{{id}}/parts/{{part}}"));
        keys.push(format!("ANY /svc{s}/{{proxy+}}"));
        i += 1;
    }
    keys.truncate(n);
    keys
}

/// Requests spread over the table, one per route shape.
fn requests(n: usize) -> Vec<(Method, String)> {
    let services = (n / 4).max(1);
    (0..64)
        .map(|k| {
            let s = (k * 7919) % services;
            match k % 4 {
                0 => (Method::GET, format!("/svc{s}/items")),
                1 => (Method::GET, format!("/svc{s}/items/42")),
                2 => (Method::POST, format!("/svc{s}/items/42/parts/7")),
                _ => (Method::DELETE, format!("/svc{s}/a/b/c")),
            }
        })
        .collect()
}

/// The baseline: every route checked in order, three passes.
struct Linear {
    routes: Vec<(Option<Method>, Vec<Segment>, usize)>,
}

impl Linear {
    fn new(keys: &[String]) -> Linear {
        let routes = keys
            .iter()
            .enumerate()
            .filter_map(|(i, k)| match RouteKey::parse(k).ok()? {
                RouteKey::Path { method, segments } => Some((method, segments, i)),
                RouteKey::Default => None,
            })
            .collect();
        Linear { routes }
    }

    fn select(&self, method: &Method, path: &str) -> Option<usize> {
        let segs: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        let method_ok = |m: &Option<Method>| m.as_ref().is_none_or(|m| m == method);
        let exact = |r: &[Segment]| {
            r.len() == segs.len()
                && r.iter()
                    .zip(&segs)
                    .all(|(a, b)| matches!(a, Segment::Literal(l) if l == b))
        };
        let var = |r: &[Segment]| {
            r.len() == segs.len()
                && r.iter().zip(&segs).all(|(a, b)| match a {
                    Segment::Literal(l) => l == b,
                    Segment::Var(_) => !b.is_empty(),
                    Segment::Greedy(_) => false,
                })
        };
        let greedy = |r: &[Segment]| {
            matches!(r.last(), Some(Segment::Greedy(_)))
                && segs.len() >= r.len()
                && r[..r.len() - 1].iter().zip(&segs).all(|(a, b)| match a {
                    Segment::Literal(l) => l == b,
                    _ => !b.is_empty(),
                })
        };
        for pass in [&exact as &dyn Fn(&[Segment]) -> bool, &var, &greedy] {
            if let Some((_, _, i)) = self.routes.iter().find(|(m, s, _)| method_ok(m) && pass(s)) {
                return Some(*i);
            }
        }
        None
    }
}

fn bench_routing(c: &mut Criterion) {
    let mut group = c.benchmark_group("route_selection");
    for n in [10usize, 100, 1_000, 10_000] {
        let keys = route_keys(n);
        let router = Router::build(
            keys.iter()
                .enumerate()
                .map(|(i, k)| (RouteKey::parse(k).unwrap(), i))
                .collect(),
        )
        .unwrap();
        let linear = Linear::new(&keys);
        let reqs = requests(n);
        // Both must agree on every request, or the comparison means nothing.
        for (m, p) in &reqs {
            assert_eq!(
                router.select(m, p).map(|s| *s.route),
                linear.select(m, p),
                "{m} {p}"
            );
        }
        group.bench_with_input(BenchmarkId::new("matchit", n), &reqs, |b, reqs| {
            b.iter(|| {
                for (m, p) in reqs {
                    black_box(router.select(m, p).map(|s| *s.route));
                }
            })
        });
        group.bench_with_input(BenchmarkId::new("linear_scan", n), &reqs, |b, reqs| {
            b.iter(|| {
                for (m, p) in reqs {
                    black_box(linear.select(m, p));
                }
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench_routing);
criterion_main!(benches);
